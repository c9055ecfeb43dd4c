"""The local journal of interactions the database could not take: an append-only file of JSON lines
in BALTO_DATA_DIR, fsynced on every append, read back in order when the database returns."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from balto.domain.interaction import IaStatus, Interaction, SttStatus, Suggestion
from balto.domain.speaker import SpeakerMatch, SpeakerScore

log = logging.getLogger(__name__)

JOURNAL_VERSION = 1


def to_record(interaction: Interaction) -> dict[str, Any]:
    record: dict[str, Any] = {"v": JOURNAL_VERSION}
    for f in dataclasses.fields(interaction):
        value = getattr(interaction, f.name)
        if f.name in ("suggestions", "playbook_suggestions"):
            value = [dataclasses.asdict(s) for s in value]
        elif f.name == "speaker":
            value = None if value is None else dataclasses.asdict(value)
        elif f.name in ("ia_status", "stt_status"):
            value = None if value is None else value.value
        record[f.name] = value
    return record


def from_record(record: dict[str, Any]) -> Interaction:
    values = {k: v for k, v in record.items() if k != "v"}
    values["suggestions"] = tuple(Suggestion(**s) for s in values.get("suggestions") or ())
    values["playbook_suggestions"] = tuple(Suggestion(**s) for s in values.get("playbook_suggestions") or ())
    speaker = values.get("speaker")
    if speaker is not None:
        values["speaker"] = SpeakerMatch(
            speaker["top_id"], speaker["score"], tuple(SpeakerScore(**p) for p in speaker["probabilities"])
        )
    values["ia_status"] = IaStatus(values.get("ia_status") or IaStatus.NOT_CALLED.value)
    if values.get("stt_status") is not None:
        values["stt_status"] = SttStatus(values["stt_status"])
    return Interaction(**values)


class FileJournal:
    """One file, appended to and rewritten whole; only one writer (the server's storage task) uses it.

    A crash mid-append leaves at most a torn last line, which `read` skips with a warning: what was
    fsynced before it is intact.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries = 0

    def open(self) -> None:
        """Count what an earlier run left behind."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries = len(self.read()) if self.path.exists() else 0
        if self.entries:
            log.warning(
                "journal %s holds %d interactions from before; they are replayed first", self.path, self.entries
            )

    @property
    def size_bytes(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def append(self, interactions: list[Interaction]) -> None:
        if not interactions:
            return
        lines = "".join(json.dumps(to_record(i), ensure_ascii=False) + "\n" for i in interactions)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        self.entries += len(interactions)

    def read(self) -> list[Interaction]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        found: list[Interaction] = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                found.append(from_record(json.loads(line)))
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("journal %s line %d is unreadable (%s); skipped", self.path, number, exc)
        return found

    def replace(self, remaining: list[Interaction]) -> None:
        """Keep only `remaining` (after some were written to the database): a new file, renamed over."""
        if not remaining:
            self.path.unlink(missing_ok=True)
            self.entries = 0
            return
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(to_record(i), ensure_ascii=False) + "\n" for i in remaining))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        self.entries = len(remaining)
