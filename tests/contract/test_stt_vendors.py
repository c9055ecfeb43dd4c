"""The vendor adapters over real HTTP (real SDKs, local servers answering as the vendors' APIs do):
what they send, how they read answers, and how every fault becomes a TranscriptionError."""

from __future__ import annotations

import time

import numpy as np
import pytest

from balto.ports.inference import TranscriptionError
from tests.support.audio import FIXTURES, read_wav
from tests.support.stt_servers import VENDOR_FACTORIES, SttReply

VENDORS = sorted(VENDOR_FACTORIES)
PCM = read_wav(FIXTURES / "bom_dia.wav")


@pytest.fixture(params=VENDORS)
def vendor(request, stt_server):
    return request.param, stt_server[request.param]


def make(vendor, **kwargs):
    name, server = vendor
    return VENDOR_FACTORIES[name](server, **kwargs)


# -- shared by every vendor ----------------------------------------------------------------------


async def test_the_segment_is_uploaded_as_16_khz_mono_16_bit_wav(vendor):
    _, server = vendor
    transcript = await make(vendor).transcribe(PCM, "pt")
    assert transcript.text == "Bom dia"
    (upload,) = [r.upload for r in server.requests if r.upload is not None]
    assert (upload.sample_rate, upload.channels, upload.sample_width) == (16_000, 1, 2)
    assert upload.frames == PCM.size


async def test_a_wrong_key_is_a_transcription_error_naming_401(vendor):
    with pytest.raises(TranscriptionError, match="401"):
        await make(vendor, api_key="wrong-key").transcribe(PCM, "pt")


async def test_a_server_error_is_a_transcription_error_naming_500(vendor):
    name, server = vendor
    server.script.append(SttReply(status=500))
    with pytest.raises(TranscriptionError, match="500") as info:
        await make(vendor).transcribe(PCM, "pt")
    assert str(info.value).startswith(f"{name}:")


async def test_a_slow_answer_times_out_as_a_transcription_error(vendor):
    _, server = vendor
    server.script.append(SttReply(delay_s=2.0))
    started = time.perf_counter()
    with pytest.raises(TranscriptionError, match=r"(?i)time|within"):
        await make(vendor, timeout_s=0.4).transcribe(PCM, "pt")
    assert time.perf_counter() - started < 1.5


@pytest.mark.parametrize("body", ["<html>Bad Gateway</html>", '{"unexpected": true}', "[1, 2]"])
async def test_a_malformed_answer_is_a_transcription_error(vendor, body):
    _, server = vendor
    server.script.append(SttReply(body=body))
    with pytest.raises(TranscriptionError):
        await make(vendor).transcribe(PCM, "pt")


async def test_nothing_said_is_an_empty_transcript_not_an_error(vendor):
    _, server = vendor
    server.script.append(SttReply(text=""))
    transcript = await make(vendor).transcribe(np.zeros(16_000, np.int16), "pt")
    assert transcript.text == ""


# -- AssemblyAI: upload, create, poll ------------------------------------------------------------


async def test_assemblyai_uploads_creates_and_polls_until_completed(stt_server):
    server = stt_server["assemblyai"]
    server.script.append(SttReply(text="Você tem dipirona?", polls=3))
    transcript = await VENDOR_FACTORIES["assemblyai"](server).transcribe(PCM, "pt")
    assert transcript.text == "Você tem dipirona?"
    assert transcript.confidence == pytest.approx(0.93) and transcript.language == "pt"
    steps = [(r.method, r.path.rsplit("/", 1)[0] if r.method == "GET" else r.path) for r in server.requests]
    assert steps == [("POST", "/v2/upload"), ("POST", "/v2/transcript")] + [("GET", "/v2/transcript")] * 4
    create = server.requests[1]
    assert create.json["audio_url"].startswith("https://cdn.assemblyai.com/upload/")
    assert create.json["language_code"] == "pt"
    assert all(r.headers["authorization"] == server.api_key for r in server.requests)


async def test_assemblyai_passes_speech_models_and_detects_the_language_when_none_is_set(stt_server):
    server = stt_server["assemblyai"]
    transcriber = VENDOR_FACTORIES["assemblyai"](
        server, speech_models=("universal-3-pro", "universal-2"), language=None
    )
    await transcriber.transcribe(PCM)
    create = server.requests[1].json
    assert create["speech_models"] == ["universal-3-pro", "universal-2"]
    assert create["language_detection"] is True and "language_code" not in create


async def test_assemblyai_a_failed_transcript_is_an_error_with_the_vendors_reason(stt_server):
    server = stt_server["assemblyai"]
    server.script.append(SttReply(job_error="Audio duration is too short."))
    with pytest.raises(TranscriptionError, match="Audio duration is too short"):
        await VENDOR_FACTORIES["assemblyai"](server).transcribe(PCM, "pt")


@pytest.mark.parametrize("step", ["transcript", "poll"])
async def test_assemblyai_a_fault_after_the_upload_is_an_error_too(stt_server, step):
    server = stt_server["assemblyai"]
    server.script.append(SttReply(step=step, status=503))
    with pytest.raises(TranscriptionError, match="503"):
        await VENDOR_FACTORIES["assemblyai"](server).transcribe(PCM, "pt")


async def test_assemblyai_a_transcript_that_never_completes_times_out(stt_server):
    server = stt_server["assemblyai"]
    server.script.append(SttReply(polls=10_000))
    with pytest.raises(TranscriptionError, match=r"within 0\.3 s"):
        await VENDOR_FACTORIES["assemblyai"](server, timeout_s=0.3).transcribe(PCM, "pt")


# -- ElevenLabs: one multipart POST --------------------------------------------------------------


async def test_elevenlabs_sends_the_model_and_language_and_reads_word_confidence(stt_server):
    server = stt_server["elevenlabs"]
    server.script.append(SttReply(text="Tem dipirona?", language="por"))
    transcript = await VENDOR_FACTORIES["elevenlabs"](server).transcribe(PCM, "pt")
    assert transcript.text == "Tem dipirona?"
    assert transcript.language == "pt"  # Scribe answers ISO 639-3
    assert transcript.confidence == pytest.approx(np.exp(-0.05))
    (request,) = server.requests
    assert request.path.startswith("/v1/speech-to-text")
    assert request.headers["xi-api-key"] == server.api_key
    assert request.form["model_id"] == "scribe_v2"
    assert request.form["language_code"] == "pt"
    assert request.form["tag_audio_events"] == "false"


async def test_elevenlabs_does_not_retry_a_failure(stt_server):
    server = stt_server["elevenlabs"]
    server.script.extend([SttReply(status=503), SttReply(text="segunda tentativa")])
    with pytest.raises(TranscriptionError, match="503"):
        await VENDOR_FACTORIES["elevenlabs"](server).transcribe(PCM, "pt")
    assert len(server.requests) == 1  # SMART_ROUTING, not the SDK, decides where to go next


# -- OpenAI-compatible: Whisper's segments go through the hallucination rules --------------------


async def test_openai_asks_whisper_models_for_verbose_json(stt_server):
    server = stt_server["openai"]
    transcript = await VENDOR_FACTORIES["openai"](server, model="Systran/faster-whisper-large-v3").transcribe(PCM, "pt")
    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {server.api_key}"
    assert request.form["model"] == "Systran/faster-whisper-large-v3"
    assert request.form["response_format"] == "verbose_json"
    assert request.form["language"] == "pt"
    assert transcript.language == "pt"  # the API answers "portuguese"
    assert transcript.confidence == pytest.approx(np.exp(-0.2))


async def test_openai_drops_what_a_served_whisper_invented(stt_server):
    server = stt_server["openai"]

    def segment(text: str, nsp: float, logprob: float, ratio: float) -> dict:
        return {
            "id": 0,
            "seek": 0,
            "start": 0.0,
            "end": 2.0,
            "text": text,
            "tokens": [1],
            "temperature": 0.0,
            "avg_logprob": logprob,
            "compression_ratio": ratio,
            "no_speech_prob": nsp,
        }

    loop = " A gente vai ver" + " o que é" * 20
    server.script.append(
        SttReply(
            segments=[
                segment(" Bom dia.", 0.05, -0.3, 0.8),
                segment(" Legendas pela comunidade Amara.org", 0.7, -0.4, 1.0),
                segment(loop, 0.62, -0.1, 18.0),
                segment(" O que é isso?", 0.55, -1.48, 0.7),
            ]
        )
    )
    transcript = await VENDOR_FACTORIES["openai"](server).transcribe(PCM, "pt")
    assert transcript.text == "Bom dia."
    assert transcript.confidence == pytest.approx(np.exp(-0.3))


async def test_openai_gpt_transcribe_models_answer_json_with_logprobs(stt_server):
    server = stt_server["openai"]
    transcript = await VENDOR_FACTORIES["openai"](server, model="gpt-4o-mini-transcribe").transcribe(PCM, "pt")
    (request,) = server.requests
    assert request.form["response_format"] == "json"
    assert request.form["include[]"] == "logprobs"
    assert transcript.text == "Bom dia"
    assert transcript.confidence == pytest.approx(np.exp(-0.1))
    assert transcript.language == "pt"  # json carries no language: the one asked for
