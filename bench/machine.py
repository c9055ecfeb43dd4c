"""What a report was measured on: the same benchmark gives different figures on different CPUs, and
the machines this project runs on are not always the same model."""

from __future__ import annotations

import os
import platform
import resource
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name and, on x86, its family/model numbers (one name can cover generations)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    fields: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
        if not line.strip():
            break
    name = fields.get("model name", platform.processor() or "unknown CPU")
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def describe() -> str:
    """'host x86_64, 2 cores, AMD EPYC (family 25, model 17)'."""
    return f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, {cpu_model()}"


def cpu_s() -> float:
    """CPU-seconds this process has spent so far, every thread's, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
