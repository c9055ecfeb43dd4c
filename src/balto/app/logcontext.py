"""Which connection a log line is about: the connection id and balcão id ride in context variables,
set once per connection, so every line logged by its tasks (they copy the context) carries them."""

from __future__ import annotations

import contextvars
import json
import logging

conexao_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("conexao_id", default=None)
balcao_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("balcao_id", default=None)


def bind(conexao: str | None, balcao: str | None) -> None:
    conexao_id.set(conexao)
    balcao_id.set(balcao)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (LOG_FORMAT=json), with `conexao_id` and `balcao_id` when known."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if (conexao := conexao_id.get()) is not None:
            payload["conexao_id"] = conexao
        if (balcao := balcao_id.get()) is not None:
            payload["balcao_id"] = balcao
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


class TextContextFilter(logging.Filter):
    """For the text format: `[conexao_id balcao_id]` before the message when known."""

    def filter(self, record: logging.LogRecord) -> bool:
        conexao, balcao = conexao_id.get(), balcao_id.get()
        record.context = f"[{conexao} {balcao}] " if conexao or balcao else ""
        return True
