"""Log lines about a connection carry its ids, in JSON and in text; tasks it starts inherit them."""

from __future__ import annotations

import asyncio
import json
import logging

from balto.app import logcontext


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("balto.test", logging.INFO, __file__, 1, message, (), None)


async def test_json_lines_carry_the_connection_and_balcao_of_the_task_that_logged():
    formatter = logcontext.JsonFormatter()

    async def connection() -> str:
        logcontext.bind("c0ffee", "B-7")

        async def child() -> str:  # a session's stage, started by the connection's handler
            return formatter.format(record("segment stored"))

        return await asyncio.create_task(child())

    line = json.loads(await asyncio.create_task(connection()))
    assert (line["msg"], line["conexao_id"], line["balcao_id"]) == ("segment stored", "c0ffee", "B-7")
    outside = json.loads(formatter.format(record("started")))
    assert "conexao_id" not in outside and "balcao_id" not in outside


def test_text_lines_get_a_prefix_only_when_known():
    log_filter = logcontext.TextContextFilter()
    plain = record("started")
    log_filter.filter(plain)
    assert plain.context == ""  # type: ignore[attr-defined]
