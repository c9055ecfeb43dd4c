"""Debian's Chromium for the browser tests: installed when missing (apt-get), or a reason to skip."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # gitignored: screenshots of the pages

# What the issue asks a headless Chromium to run with: nothing from the network, no first-run UI, and a
# fake microphone that plays a file. Playwright adds --headless and the fresh --user-data-dir itself
# (launch_persistent_context with a temporary folder).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
)

INSTALL_TIMEOUT_S = 600
UPDATE_TIMEOUT_S = 300


def _apt(*args: str, timeout: float) -> subprocess.CompletedProcess[str] | str:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"apt-get {' '.join(args)} took more than {timeout:g} s"


def _tail(result: subprocess.CompletedProcess[str] | str) -> str:
    if isinstance(result, str):
        return result
    return (result.stderr or result.stdout).strip().splitlines()[-1:][0] if (result.stderr or result.stdout) else ""


def ensure_chromium() -> str | None:
    """Install Debian's chromium package if /usr/bin/chromium is missing. None when it is there, else
    why it is not (the tests skip with that reason). `apt-get update` runs only if the first install
    fails, so a machine whose package lists are fresh enough pays for one install and nothing else."""
    if CHROMIUM.exists():
        return None
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and there is no apt-get to install Debian's chromium"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return f"{CHROMIUM} is missing and installing it needs root (apt-get install chromium)"
    first = _apt("install", "-y", "chromium", timeout=INSTALL_TIMEOUT_S)
    if isinstance(first, str) or first.returncode != 0:
        update = _apt("update", timeout=UPDATE_TIMEOUT_S)
        if isinstance(update, str) or update.returncode != 0:
            return f"apt-get install chromium failed ({_tail(first)}), and so did apt-get update ({_tail(update)})"
        second = _apt("install", "-y", "chromium", timeout=INSTALL_TIMEOUT_S)
        if isinstance(second, str) or second.returncode != 0:
            return f"apt-get install chromium failed after apt-get update: {_tail(second)}"
    if not CHROMIUM.exists():
        return f"apt-get installed chromium but {CHROMIUM} is still missing"
    return None
