"""The interaction write queue: batches, the journal during an outage, replay in order, no duplicates."""

from __future__ import annotations

import asyncio
import json

import pytest

from balto.adapters.journal import FileJournal, from_record, to_record
from balto.app.durability import DurableInteractions
from balto.domain.interaction import IaStatus, Interaction, SttStatus, Suggestion
from balto.domain.speaker import SpeakerMatch, SpeakerScore
from tests.fakes import InMemoryInteractionRepository


class FlakyRepository(InMemoryInteractionRepository):
    """The in-memory repository behind a switch: while `down`, every write fails like a dead database."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.hang = False
        self.batches: list[int] = []

    async def add_many(self, interactions: list[Interaction]) -> None:
        if self.hang:
            await asyncio.sleep(3600)
        if self.down:
            raise ConnectionRefusedError("database is down")
        self.batches.append(len(interactions))
        for interaction in interactions:
            await self.add(interaction)


def row(n: int, balcao: str = "B1") -> Interaction:
    return Interaction(balcao_id=balcao, conexao_id="c1", transcricao=f"fala {n}", segmento_inicio=float(n))


async def until(condition, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def durable(repo, tmp_path, **kwargs) -> DurableInteractions:
    defaults = {"batch_size": 10, "write_timeout_s": 0.5, "retry_initial_s": 0.01, "retry_max_s": 0.05}
    return DurableInteractions(repo, FileJournal(tmp_path / "journal.jsonl"), **{**defaults, **kwargs})


def test_a_journal_record_round_trips_every_field():
    interaction = Interaction(
        balcao_id="B1",
        conexao_id="c1",
        transcricao="tem dipirona?",
        ia_status=IaStatus.OK,
        suggestions=(Suggestion("Ofereça água"),),
        playbook_suggestions=(Suggestion("Pergunte a idade", source="playbook", rule="idade"),),
        checklist={"saudacao": True},
        speaker=SpeakerMatch("7", 0.81, (SpeakerScore("7", "Ana", "atendente", 0.81, 0.9),)),
        stt_status=SttStatus.OK,
        ts_audio_received=1700000000.5,
    )
    again = from_record(json.loads(json.dumps(to_record(interaction))))
    assert again == interaction


async def test_rows_go_to_the_database_in_batches(tmp_path):
    repo = FlakyRepository()
    storage = durable(repo, tmp_path)
    await storage.start()
    rows = [row(n) for n in range(25)]
    for r in rows:
        await storage.add(r)
    await storage.aclose()
    assert [r.uuid for r in repo.rows] == [r.uuid for r in rows]
    assert max(repo.batches) > 1  # the queue is taken in batches, not one transaction per row
    assert not (tmp_path / "journal.jsonl").exists()


async def test_an_outage_journals_then_replays_in_order_without_duplicates(tmp_path):
    repo = FlakyRepository()
    storage = durable(repo, tmp_path)
    await storage.start()
    first = [row(n) for n in range(3)]
    for r in first:
        await storage.add(r)
    await until(lambda: len(repo.rows) == 3)
    repo.down = True
    during = [row(n) for n in range(3, 40)]
    for r in during:
        await storage.add(r)
    await until(lambda: storage.journal.entries == len(during))
    assert len(repo.rows) == 3
    # A card from a row still in the journal can be given feedback: `get` finds it.
    assert (await storage.get(during[0].uuid)) is not None
    repo.down = False
    after = [row(n) for n in range(40, 45)]
    for r in after:
        await storage.add(r)
    await until(lambda: len(repo.rows) == 45)
    await storage.aclose()
    assert [r.uuid for r in repo.rows] == [r.uuid for r in first + during + after]
    assert storage.journal.entries == 0
    assert not (tmp_path / "journal.jsonl").exists()


async def test_a_hung_database_is_journalled_after_the_write_timeout(tmp_path):
    repo = FlakyRepository()
    repo.hang = True
    storage = durable(repo, tmp_path, write_timeout_s=0.1)
    await storage.start()
    r = row(1)
    await storage.add(r)
    await until(lambda: storage.journal.entries == 1)
    repo.hang = False
    await until(lambda: len(repo.rows) == 1)
    await storage.aclose()


async def test_what_the_database_cannot_take_by_shutdown_is_replayed_at_the_next_start(tmp_path):
    repo = FlakyRepository()
    repo.down = True
    storage = durable(repo, tmp_path)
    await storage.start()
    rows = [row(n) for n in range(5)]
    for r in rows:
        await storage.add(r)
    await storage.aclose(deadline_s=0.5)
    assert FileJournal(tmp_path / "journal.jsonl").read() == rows
    repo.down = False
    again = durable(repo, tmp_path)
    await again.start()
    await until(lambda: len(repo.rows) == 5)
    await again.aclose()
    assert [r.uuid for r in repo.rows] == [r.uuid for r in rows]


async def test_replaying_rows_already_in_the_database_stores_them_once(tmp_path):
    repo = FlakyRepository()
    rows = [row(n) for n in range(4)]
    for r in rows[:2]:  # they reached the database just before the write timed out
        await repo.add(r)
    FileJournal(tmp_path / "journal.jsonl").append(rows)
    storage = durable(repo, tmp_path)
    await storage.start()
    await until(lambda: len(repo.rows) == 4)
    await storage.aclose()
    assert sorted(r.uuid for r in repo.rows) == sorted(r.uuid for r in rows)


def test_a_torn_last_line_is_skipped(tmp_path):
    journal = FileJournal(tmp_path / "journal.jsonl")
    journal.append([row(1), row(2)])
    with journal.path.open("a") as handle:
        handle.write('{"v": 1, "balcao_id": "B1", "conex')  # the process died mid-append
    journal.open()
    assert [r.transcricao for r in journal.read()] == ["fala 1", "fala 2"]
    assert journal.entries == 2


async def test_the_queue_is_bounded(tmp_path):
    repo = FlakyRepository()
    repo.hang = True
    storage = durable(repo, tmp_path, queue_size=2, batch_size=1, write_timeout_s=30)
    await storage.start()
    for n in range(3):  # one in the writer's hands, two in the queue
        await storage.add(row(n))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(storage.add(row(99)), 0.2)
    await storage.aclose(deadline_s=0.2)
