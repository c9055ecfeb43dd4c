"""Interactions written through a bounded queue, in batches, with a local journal for outages.

The session hands each finished cycle to `DurableInteractions.add`, which only queues it. One writer
task takes up to `batch_size` rows at a time to the database. When a write fails (database down, or
slower than `write_timeout_s`), the batch is appended to the journal file and every later row follows
it there, so order is kept; the writer retries the journal with exponential back-off and, once the
database answers, replays it in order and truncates it. The interaction's uuid is the idempotency key
(the repository's insert is ON CONFLICT DO NOTHING on it), so a batch that reached the database just
before a timeout is not stored twice when replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from balto.adapters.journal import FileJournal
from balto.domain.interaction import Interaction
from balto.ports.storage import InteractionRepository

log = logging.getLogger(__name__)

_CLOSE = object()


class BatchWriter(Protocol):
    async def add_many(self, interactions: list[Interaction]) -> None: ...


class DurableInteractions(InteractionRepository):
    def __init__(
        self,
        inner: InteractionRepository,
        journal: FileJournal,
        *,
        queue_size: int = 1000,
        batch_size: int = 50,
        write_timeout_s: float = 5.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
        on_change: Callable[[DurableInteractions], None] | None = None,
        on_add: Callable[[Interaction], None] | None = None,
        remember: int = 10_000,
    ) -> None:
        self._inner = inner
        self.journal = journal
        self._queue: asyncio.Queue[Interaction | object] = asyncio.Queue(queue_size)
        self._batch_size = batch_size
        self._write_timeout_s = write_timeout_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._on_change = on_change
        self._on_add = on_add
        # Rows not yet confirmed in the database, so `get` (feedback on a fresh card) still finds them.
        self._unwritten: OrderedDict[str, Interaction] = OrderedDict()
        self._in_journal: set[str] = set()  # of those, the ones already safe on disk
        self._remember = remember
        self._writer: asyncio.Task[None] | None = None
        self.failures = 0
        self.written = 0

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.journal.open)
        self._writer = asyncio.create_task(self._run(), name="interaction-writer")
        self._changed()

    async def aclose(self, deadline_s: float = 30.0) -> None:
        """Write what is queued (or journal it) within `deadline_s`; what the database cannot take by
        then stays in the journal for the next start."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        loop = asyncio.get_running_loop()
        ends = loop.time() + deadline_s
        try:
            await asyncio.wait_for(self._queue.put(_CLOSE), deadline_s)  # the queue may be full
            await asyncio.wait_for(asyncio.shield(writer), max(0.0, ends - loop.time()))
        except TimeoutError:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        # Whatever the writer did not reach (cancelled mid-batch included) goes to disk: replay is idempotent.
        left = [i for i in self._unwritten.values() if i.uuid not in self._in_journal]
        while not self._queue.empty():
            self._queue.get_nowait()
        if left:
            await asyncio.to_thread(self.journal.append, left)
            log.warning(
                "%d interactions journalled at shutdown (%s); replayed at the next start", len(left), self.journal.path
            )
        self._changed()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    # -- the port ----------------------------------------------------------------------------------

    async def add(self, interaction: Interaction) -> int:
        """Queue the row; its id is only known once written (0 until then)."""
        if self._writer is None:
            raise RuntimeError("the interaction writer is not running")
        self._remember_unwritten(interaction)
        if self._on_add is not None:
            self._on_add(interaction)
        await self._queue.put(interaction)  # bounded: a stalled writer slows the sessions, never grows memory
        self._changed()
        return interaction.id or 0

    async def get(self, uuid: str) -> Interaction | None:
        pending = self._unwritten.get(uuid)
        if pending is not None:
            return pending
        return await self._inner.get(uuid)

    async def list_recent(self, balcao_id: str | None = None, limit: int = 50) -> list[Interaction]:
        return await self._inner.list_recent(balcao_id, limit)

    # -- the writer ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay, next_try, closing = self._retry_initial_s, 0.0, False
        while True:
            if self.journal.entries:
                # Outage mode: everything new follows the journal, which is retried with back-off.
                if not closing:
                    batch, closing = await self._take(max(0.0, next_try - loop.time()))
                    if batch:
                        await self._journal(batch)
                if loop.time() >= next_try or closing:
                    if await self._replay():
                        delay = self._retry_initial_s
                        continue
                    if closing:
                        return  # the journal keeps it for the next start
                    next_try, delay = loop.time() + delay, min(delay * 2, self._retry_max_s)
                    log.warning(
                        "database still unreachable; %d interactions journalled, next try in %.1f s",
                        self.journal.entries,
                        next_try - loop.time(),
                    )
                continue
            if closing:
                return
            batch, closing = await self._take(None)
            if batch and not await self._write(batch):
                await self._journal(batch)
                next_try, delay = loop.time() + delay, min(delay * 2, self._retry_max_s)

    async def _take(self, wait_s: float | None) -> tuple[list[Interaction], bool]:
        """Up to batch_size queued rows, waiting at most `wait_s` for the first; and whether close was asked."""
        batch: list[Interaction] = []
        try:
            first = await asyncio.wait_for(self._queue.get(), wait_s) if wait_s is not None else await self._queue.get()
        except TimeoutError:
            return batch, False
        items = [first]
        while len(items) < self._batch_size and not self._queue.empty():
            items.append(self._queue.get_nowait())
        closing = False
        for item in items:
            if item is _CLOSE:
                closing = True
            else:
                assert isinstance(item, Interaction)
                batch.append(item)
        self._changed()
        return batch, closing

    async def _write(self, batch: list[Interaction]) -> bool:
        try:
            await asyncio.wait_for(self._insert(batch), self._write_timeout_s)
        except Exception as exc:
            self.failures += 1
            log.warning("could not write %d interactions to the database (%s: %s)", len(batch), type(exc).__name__, exc)
            return False
        for interaction in batch:
            self._unwritten.pop(interaction.uuid, None)
            self._in_journal.discard(interaction.uuid)
        self.written += len(batch)
        self._changed()
        return True

    async def _insert(self, batch: list[Interaction]) -> None:
        add_many = getattr(self._inner, "add_many", None)
        if add_many is not None:
            await add_many(batch)
            return
        for interaction in batch:
            await self._inner.add(interaction)

    async def _journal(self, batch: list[Interaction]) -> None:
        await asyncio.to_thread(self.journal.append, batch)
        self._in_journal.update(interaction.uuid for interaction in batch)
        self._changed()

    async def _replay(self) -> bool:
        """Write the journal to the database in order; True when it is empty afterwards."""
        entries = await asyncio.to_thread(self.journal.read)
        done = 0
        while done < len(entries):
            batch = entries[done : done + self._batch_size]
            if not await self._write(batch):
                await asyncio.to_thread(self.journal.replace, entries[done:])
                self._changed()
                return False
            done += len(batch)
        await asyncio.to_thread(self.journal.replace, [])
        log.info("journal replayed: %d interactions written", len(entries))
        self._changed()
        return True

    def _remember_unwritten(self, interaction: Interaction) -> None:
        self._unwritten[interaction.uuid] = interaction
        while len(self._unwritten) > self._remember:
            forgotten, _ = self._unwritten.popitem(last=False)
            self._in_journal.discard(forgotten)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self)
