"""Admission rules: connection slots per key and in total; failed handshakes per address."""

from __future__ import annotations

from balto.domain.limits import ConnectionSlots, FailedHandshakes, Refusal


def test_slots_per_key_and_in_total():
    slots = ConnectionSlots(max_total=3, max_per_key=2)
    assert slots.take(1) is None
    assert slots.take(1) is None
    assert slots.take(1) is Refusal.KEY_FULL
    assert slots.take(2) is None
    assert slots.take(3) is Refusal.SERVER_FULL
    slots.give_back(1)
    assert slots.held(1) == 1
    assert slots.take(3) is None


def test_zero_means_no_limit():
    slots = ConnectionSlots(0, 0)
    assert all(slots.take(1) is None for _ in range(1000))
    failures = FailedHandshakes(max_failures=0)
    for t in range(100):
        failures.failed("10.0.0.1", float(t))
    assert not failures.blocked("10.0.0.1", 100.0)


def test_an_address_is_blocked_after_too_many_failures_until_they_age_out():
    failures = FailedHandshakes(max_failures=3, window_s=60)
    for t in (0.0, 1.0, 2.0):
        assert not failures.blocked("10.0.0.1", t)
        failures.failed("10.0.0.1", t)
    assert failures.blocked("10.0.0.1", 3.0)
    assert not failures.blocked("10.0.0.2", 3.0)  # other addresses are not affected
    assert failures.blocked("10.0.0.1", 59.9)
    assert not failures.blocked("10.0.0.1", 60.5)  # the first failure left the window


def test_remembered_addresses_are_bounded():
    failures = FailedHandshakes(max_failures=2, window_s=60, max_addresses=100)
    for n in range(1000):
        failures.failed(f"10.0.{n // 256}.{n % 256}", 0.0)
    assert len(failures) == 100
