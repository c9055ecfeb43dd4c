"""STT_BATCH_AFTER_MS auto: how far behind the queue must be before Whisper batches follows the
kernels CTranslate2 runs on (batches pay on oneDNN, the AMD CPUs; on Intel MKL they cost more, and
pay only far past capacity: docs/performance.md, item 17)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from balto.adapters.faster_whisper import (
    AFTER_DECODES_ON_MKL,
    AFTER_DECODES_ON_ONEDNN,
    WhisperTranscriber,
    cpu_vendor,
    ctranslate2_uses_mkl,
    default_after_decodes,
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


def test_batches_one_decode_behind_on_onednn_three_on_mkl():
    assert default_after_decodes({}, "AuthenticAMD") == AFTER_DECODES_ON_ONEDNN == 1
    assert default_after_decodes({}, "GenuineIntel") == AFTER_DECODES_ON_MKL == 3
    assert default_after_decodes({"CT2_USE_MKL": "0"}, "GenuineIntel") == 1


@pytest.mark.parametrize(("after_decodes", "behind"), [(1.0, 3), (3.0, 1)])
def test_the_lag_is_counted_in_that_many_decodes(after_decodes, behind):
    model = SimpleNamespace(generate_with_fallback=lambda *args, **kwargs: None)  # no weights needed
    whisper = WhisperTranscriber(model, None, batch=4, batch_after_decodes=after_decodes)
    whisper._timed(0.2)  # a lone decode took 0.2 s
    oldest = SimpleNamespace(queued_at=time.perf_counter() - 0.7)  # has waited 0.7 s
    assert whisper._decodes_behind(oldest) == behind


def test_a_lag_of_no_decode_is_refused():
    model = SimpleNamespace(generate_with_fallback=lambda *args, **kwargs: None)
    with pytest.raises(ValueError, match="lag"):
        WhisperTranscriber(model, None, batch=4, batch_after_decodes=0)
