"""The admin HTTP endpoints of the real Litestar app, its container overridden with fakes where a
database or a model would be: enrolment by upload, the admin key, the OpenAPI schema."""

from __future__ import annotations

import io
import logging
import wave

import numpy as np
import pytest
from dependency_injector import providers
from litestar.testing import AsyncTestClient

from balto.app import container as composition
from balto.app.settings import Settings
from balto.app.web import create_app
from tests.fakes import (
    EnergySpeechDetector,
    FakeClock,
    FakeSpeakerEmbedder,
    FakeTranscriber,
    InMemoryApiKeyRepository,
    InMemoryFeedbackRepository,
    InMemoryInteractionRepository,
    InMemorySpeakerProfileRepository,
)
from tests.support.audio import silence, syllables
from tests.support.speakers import SPEAKER_FIXTURES

KEY = "admin-secret"


def wav_bytes(pcm: np.ndarray, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buffer.getvalue()


def app_with_fakes(env: dict[str, str]):
    settings = Settings.from_env({"AUDIO_CLEANER": "off", **env})
    container = composition.build_container(settings)
    profiles = InMemorySpeakerProfileRepository()
    container.database.override(providers.Object(None))
    container.interactions.override(providers.Object(InMemoryInteractionRepository()))
    container.api_keys.override(providers.Object(InMemoryApiKeyRepository()))
    container.feedback.override(providers.Object(InMemoryFeedbackRepository()))
    container.speaker_profiles.override(providers.Object(profiles))
    container.transcriber.override(providers.Object(FakeTranscriber()))
    container.clock.override(providers.Object(FakeClock()))
    container.speaker_embedder.override(providers.Object(FakeSpeakerEmbedder()))
    container.speech_detector.override(providers.Factory(EnergySpeechDetector))
    return create_app(container=container), profiles


@pytest.fixture
async def client():
    app, profiles = app_with_fakes({"BALTO_ADMIN_KEY": KEY})
    async with AsyncTestClient(app) as client:
        client.profiles = profiles
        yield client


def enroll_form(**fields):
    return {"nome": "Ana", "papel": "atendente", "balcao_id": "B1", **fields}


async def test_enrolment_by_upload_creates_a_profile(client):
    files = [
        ("arquivos", ("a.wav", wav_bytes(syllables(4.0, pitch_hz=120)), "audio/wav")),
        ("arquivos", ("b.opus", (SPEAKER_FIXTURES / "voz_d_enroll.opus").read_bytes(), "audio/ogg")),
    ]
    response = await client.post("/admin/speakers", data=enroll_form(), files=files, headers={"X-Admin-Key": KEY})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["perfil"]["nome"] == "Ana" and body["perfil"]["papel"] == "atendente"
    assert body["perfil"]["balcao_id"] == "B1" and body["perfil"]["amostras"] == 2
    assert body["perfil"]["modelo"] == "fake-ltas" and body["fala_s"] > 5
    (stored,) = await client.profiles.list("B1")
    assert stored.id == body["perfil"]["id"] and stored.samples == 2

    listed = await client.get("/admin/speakers", params={"balcao_id": "B1"}, headers={"X-Admin-Key": KEY})
    assert listed.status_code == 200 and [p["nome"] for p in listed.json()] == ["Ana"]
    assert (await client.get("/admin/speakers", params={"balcao_id": "B9"}, headers={"X-Admin-Key": KEY})).json() == []

    gone = await client.delete(f"/admin/speakers/{stored.id}", headers={"X-Admin-Key": KEY})
    assert gone.status_code == 204
    again = await client.delete(f"/admin/speakers/{stored.id}", headers={"X-Admin-Key": KEY})
    assert again.status_code == 404


async def test_silent_or_short_uploads_are_refused_with_the_reason(client):
    silent = [("arquivos", ("quiet.wav", wav_bytes(silence(8.0)), "audio/wav"))]
    response = await client.post("/admin/speakers", data=enroll_form(), files=silent, headers={"X-Admin-Key": KEY})
    assert response.status_code == 422 and "no speech found in quiet.wav" in response.json()["detail"]
    short = [("arquivos", ("short.wav", wav_bytes(syllables(2.0)), "audio/wav"))]
    response = await client.post("/admin/speakers", data=enroll_form(), files=short, headers={"X-Admin-Key": KEY})
    assert response.status_code == 422 and "of speech in total" in response.json()["detail"]
    assert await client.profiles.list() == []


async def test_a_file_that_is_not_audio_is_415(client):
    files = [("arquivos", ("notes.wav", b"not audio at all", "audio/wav"))]
    response = await client.post("/admin/speakers", data=enroll_form(), files=files, headers={"X-Admin-Key": KEY})
    assert response.status_code == 415 and "notes.wav" in response.json()["detail"]


@pytest.mark.parametrize(
    "headers", [{}, {"X-Admin-Key": "wrong"}, {"X-Admin-Key": ""}], ids=["missing", "wrong", "empty"]
)
async def test_admin_endpoints_need_the_admin_key(client, headers):
    files = [("arquivos", ("a.wav", wav_bytes(syllables(8.0)), "audio/wav"))]
    assert (await client.post("/admin/speakers", data=enroll_form(), files=files, headers=headers)).status_code == 401
    assert (await client.get("/admin/speakers", headers=headers)).status_code == 401
    assert (await client.delete("/admin/speakers/1", headers=headers)).status_code == 401
    assert await client.profiles.list() == []


async def test_the_openapi_schema_documents_the_admin_endpoints(client):
    schema = (await client.get("/schema/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["adminKey"] == {
        "type": "apiKey",
        "name": "X-Admin-Key",
        "in": "header",
        "description": "The server's BALTO_ADMIN_KEY.",
    }
    post = schema["paths"]["/admin/speakers"]["post"]
    assert post["security"] == [{"adminKey": []}]
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert {"get", "post"} <= set(schema["paths"]["/admin/speakers"])
    assert "delete" in schema["paths"]["/admin/speakers/{profile_id}"]


async def test_without_an_admin_key_the_endpoints_are_off_and_the_log_says_so(caplog):
    with caplog.at_level(logging.WARNING):
        app, _ = app_with_fakes({})
    assert "BALTO_ADMIN_KEY is unset: the admin endpoints (/admin/speakers) are disabled" in caplog.text
    async with AsyncTestClient(app) as client:
        assert (await client.get("/admin/speakers", headers={"X-Admin-Key": ""})).status_code == 404
        assert (await client.get("/health")).status_code == 200


async def test_with_identification_off_enrolment_says_so():
    app, _ = app_with_fakes({"BALTO_ADMIN_KEY": KEY, "SPEAKER_ID": "off"})
    async with AsyncTestClient(app) as client:
        files = [("arquivos", ("a.wav", wav_bytes(syllables(8.0)), "audio/wav"))]
        response = await client.post("/admin/speakers", data=enroll_form(), files=files, headers={"X-Admin-Key": KEY})
        assert response.status_code == 503 and "SPEAKER_ID=off" in response.json()["detail"]
        assert (await client.get("/admin/speakers", headers={"X-Admin-Key": KEY})).json() == []


async def test_after_start_up_the_loaded_models_are_out_of_the_garbage_collectors_sight(client):
    # A full collection over the models' objects froze the event loop for ~280 ms (docs/performance.md).
    import gc

    assert gc.get_freeze_count() > 0
