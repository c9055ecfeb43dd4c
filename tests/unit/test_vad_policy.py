import math

import pytest

from balto.domain.vad import VadPolicy, VadSettingsError


def test_defaults_are_the_specs():
    policy = VadPolicy()
    assert policy.threshold_multiplier == 1.5
    assert policy.min_energy == 50.0


def test_handshake_overrides_each_value_independently():
    base = VadPolicy(2.0, 80.0)
    assert base.with_overrides({"threshold_multiplier": 3}) == VadPolicy(3.0, 80.0)
    assert base.with_overrides({"min_energy": 120.5}) == VadPolicy(2.0, 120.5)
    assert base.with_overrides({}) == base
    assert base.with_overrides(None) is base


@pytest.mark.parametrize("value", [1.0, 10.0, 1, 5.5])
def test_threshold_multiplier_accepts_its_range_inclusive(value):
    assert VadPolicy().with_overrides({"threshold_multiplier": value}).threshold_multiplier == float(value)


@pytest.mark.parametrize("value", [0.99, 10.01, -1, math.inf, math.nan])
def test_threshold_multiplier_out_of_range_is_rejected_not_clamped(value):
    with pytest.raises(VadSettingsError, match="threshold_multiplier deve estar entre 1 e 10"):
        VadPolicy().with_overrides({"threshold_multiplier": value})


@pytest.mark.parametrize("value", [0, 0.0, 5000, 50])
def test_min_energy_accepts_its_range_inclusive(value):
    assert VadPolicy().with_overrides({"min_energy": value}).min_energy == float(value)


@pytest.mark.parametrize("value", [-0.1, 5000.5, 1e9])
def test_min_energy_out_of_range_is_rejected(value):
    with pytest.raises(VadSettingsError, match="min_energy deve estar entre 0 e 5000"):
        VadPolicy().with_overrides({"min_energy": value})


@pytest.mark.parametrize("value", ["1.5", True, None, [1.5], {"v": 1}])
def test_wrong_types_are_rejected_with_the_type_named(value):
    with pytest.raises(VadSettingsError, match="deve ser um número"):
        VadPolicy().with_overrides({"threshold_multiplier": value})


def test_unknown_keys_are_rejected():
    with pytest.raises(VadSettingsError, match="campos desconhecidos: sensitivity"):
        VadPolicy().with_overrides({"sensitivity": 3})


def test_vad_settings_must_be_an_object():
    with pytest.raises(VadSettingsError, match="objeto JSON"):
        VadPolicy().with_overrides([1.5, 50])  # type: ignore[arg-type]


def test_constructor_validates_too():
    with pytest.raises(VadSettingsError):
        VadPolicy(threshold_multiplier=0.5)


def test_energy_gate_needs_both_the_floor_and_the_multiple_of_the_noise():
    policy = VadPolicy(threshold_multiplier=2.0, min_energy=100.0)
    assert not policy.passes_energy(100.0, noise_floor=10.0)  # not above min_energy (strict)
    assert policy.passes_energy(100.1, noise_floor=10.0)
    assert not policy.passes_energy(400.0, noise_floor=200.0)  # exactly 2x the noise is not above it
    assert policy.passes_energy(400.1, noise_floor=200.0)
