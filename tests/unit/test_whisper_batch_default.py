"""STT_BATCH auto: the largest Whisper batch follows the kernels CTranslate2 runs on (batches pay on
oneDNN, the AMD CPUs; they cost more on Intel MKL: docs/performance.md, the third Intel round)."""

from __future__ import annotations

import pytest

from balto.adapters.faster_whisper import (
    BATCH_ON_MKL,
    BATCH_ON_ONEDNN,
    cpu_vendor,
    ctranslate2_uses_mkl,
    default_batch,
)

INTEL = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 167\n\nprocessor\t: 1\n"
AMD = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n"
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n"


@pytest.mark.parametrize(("text", "vendor"), [(INTEL, "GenuineIntel"), (AMD, "AuthenticAMD"), (ARM, None)])
def test_the_vendor_is_read_from_cpuinfo(tmp_path, text, vendor):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(text, encoding="utf-8")
    assert cpu_vendor(cpuinfo) == vendor


def test_no_cpuinfo_means_no_vendor(tmp_path):
    assert cpu_vendor(tmp_path / "absent") is None


@pytest.mark.parametrize(
    ("env", "vendor", "mkl"),
    [
        ({}, "GenuineIntel", True),
        ({}, "AuthenticAMD", False),
        ({"CT2_USE_MKL": "0"}, "GenuineIntel", False),  # forced off: oneDNN on Intel too
        ({"CT2_USE_MKL": "1"}, "AuthenticAMD", True),
        ({"CT2_USE_MKL": ""}, "GenuineIntel", True),  # empty: CTranslate2's own choice
    ],
)
def test_ctranslate2_picks_mkl_by_vendor_unless_told(env, vendor, mkl):
    assert ctranslate2_uses_mkl(env, vendor) is mkl


def test_batches_of_four_on_onednn_none_on_mkl():
    assert default_batch({}, "AuthenticAMD") == BATCH_ON_ONEDNN == 4
    assert default_batch({}, "GenuineIntel") == BATCH_ON_MKL == 1
    assert default_batch({"CT2_USE_MKL": "0"}, "GenuineIntel") == 4
