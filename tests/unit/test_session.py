"""The application service, end to end through its ports, with in-memory fakes and a fake clock."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from balto.adapters.pcm import RawPcmDecoder
from balto.app.routing import SmartRoutingTranscriber
from balto.app.session import CounterSession, PipelineDeps, RecommendationEvent, TranscriptEvent
from balto.domain.audio import AudioFormat
from balto.domain.interaction import IaStatus, RecommendationResult, SttStatus
from balto.domain.routing import RoutingPolicy
from balto.domain.vad import VadPolicy
from tests.fakes import (
    EnergySpeechDetector,
    FakeClock,
    FakeRecommender,
    FakeTranscriber,
    InMemoryInteractionRepository,
    ok,
)
from tests.support.audio import silence, syllables

TWO_UTTERANCES = np.concatenate([silence(0.5), syllables(1.0), silence(1.0), syllables(1.2), silence(1.0)])


def make(texts, recommender=None, clock=None, transcriber=None):
    clock = clock or FakeClock()
    repo = InMemoryInteractionRepository()
    deps = PipelineDeps(
        transcriber=transcriber or FakeTranscriber(texts),
        interactions=repo,
        clock=clock,
        new_detector=EnergySpeechDetector,
        new_decoder=RawPcmDecoder,
        recommender=recommender,
        tick_s=0.005,
    )
    events: list = []

    async def emit(event):
        events.append(event)

    session = CounterSession(
        deps,
        balcao_id="B1",
        conexao_id="c1",
        policy=VadPolicy(),
        audio_format=AudioFormat(),
        emit=emit,
        want_transcripts=True,
    )
    return session, repo, events, clock


async def stream(session: CounterSession, pcm: np.ndarray, chunk: int = 4000, clock: FakeClock | None = None):
    session.start()
    for offset in range(0, pcm.size, chunk):
        await session.feed(pcm[offset : offset + chunk].tobytes())
        if clock is not None:
            clock.advance(chunk / 16_000)
    await session.finish()


async def test_each_segment_is_one_row_and_eleven_words_fire_the_llm():
    recommender = FakeRecommender([ok("Ofereça dipirona", "Pergunte há quanto tempo dói")])
    session, repo, events, clock = make(
        ["Bom dia eu estou com muita dor de cabeça", "você tem algum remédio"], recommender
    )
    await stream(session, TWO_UTTERANCES, clock=clock)

    rows = repo.rows
    assert [r.transcricao for r in rows] == ["Bom dia eu estou com muita dor de cabeça", "você tem algum remédio"]
    first, second = rows
    assert first.recomendacao_gerada is None and first.ia_status is IaStatus.NOT_CALLED
    assert first.buffer_acao == "aguardando"
    assert second.buffer_acao == "disparar:acumulo"
    assert second.recomendacao_gerada == "S: Ofereça dipirona | S: Pergunte há quanto tempo dói"
    assert second.transcricao_completa == "Bom dia eu estou com muita dor de cabeça\nvocê tem algum remédio"
    assert recommender.requests[0].context == second.transcricao_completa
    stamps = [
        second.ts_audio_received,
        second.ts_segment_closed,
        second.ts_trans_req,
        second.ts_trans_resp,
        second.ts_trans_sent,
        second.ts_ai_req,
        second.ts_ai_resp,
        second.ts_rec_sent,
    ]
    assert None not in stamps and stamps == sorted(stamps)
    kinds = [type(e) for e in events]
    assert kinds == [TranscriptEvent, TranscriptEvent, RecommendationEvent]
    assert events[2].interaction_uuid == second.uuid
    assert 0.2 <= events[0].start_s < 0.5 and 1.5 < events[0].end_s < 1.8  # pre-roll, short tail


async def test_segment_times_are_seconds_of_audio():
    session, repo, _events, _ = make(["um", "dois"])
    await stream(session, TWO_UTTERANCES)
    first, second = repo.rows
    assert first.segmento_inicio == pytest.approx(0.5, abs=0.3)
    assert second.segmento_inicio == pytest.approx(2.5, abs=0.3)


async def test_without_a_recommender_rows_say_the_llm_was_not_called():
    session, repo, events, clock = make(["a b c d e f g h i j k l", "m n"], recommender=None)
    await stream(session, TWO_UTTERANCES, clock=clock)
    assert all(r.recomendacao_gerada is None and r.ia_status is IaStatus.NOT_CALLED for r in repo.rows)
    assert not any(isinstance(e, RecommendationEvent) for e in events)


async def test_empty_answer_is_nenhuma_and_sends_no_card():
    recommender = FakeRecommender([RecommendationResult(IaStatus.OK, (), raw='{"sugestoes": []}')])
    session, repo, events, _ = make(["a b c d e f g h i j k l"], recommender)
    await stream(session, np.concatenate([silence(0.3), syllables(1.0), silence(1.0)]))
    (row,) = repo.rows
    assert row.recomendacao_gerada == "Nenhuma"
    assert row.ia_status is IaStatus.EMPTY
    assert row.grok_raw_response == '{"sugestoes": []}'
    assert not any(isinstance(e, RecommendationEvent) for e in events)


async def test_failed_call_is_null_with_the_error_kept():
    recommender = FakeRecommender([RecommendationResult(IaStatus.TIMEOUT, error="timeout after 10 s")])
    session, repo, _, _ = make(["a b c d e f g h i j k l"], recommender)
    await stream(session, np.concatenate([silence(0.3), syllables(1.0), silence(1.0)]))
    (row,) = repo.rows
    assert row.recomendacao_gerada is None
    assert row.ia_status is IaStatus.TIMEOUT
    assert row.grok_raw_response == "timeout after 10 s"
    assert row.ts_ai_req is not None and row.ts_ai_resp is not None


async def test_a_crashing_recommender_is_an_error_row_not_a_dead_session():
    class Boom(FakeRecommender):
        async def recommend(self, request):
            raise RuntimeError("kaput")

    session, repo, _, _ = make(["a b c d e f g h i j k l", "outra frase"], Boom())
    await stream(session, TWO_UTTERANCES)
    fired = next(r for r in repo.rows if r.transcricao == "a b c d e f g h i j k l")
    assert fired.ia_status is IaStatus.ERROR
    assert "kaput" in fired.grok_raw_response
    assert len(repo.rows) == 2


async def test_one_call_in_flight_text_waits_then_goes_out():
    recommender = FakeRecommender([ok("primeira"), ok("segunda")])
    recommender.gate = asyncio.Event()
    session, repo, _events, _clock = make(["a b c d e f g h i j k l", "m n o p q r s t u v w x"], recommender)
    session.start()
    pcm = TWO_UTTERANCES
    await session.feed(pcm[: 16_000 * 2].tobytes())  # first utterance and its pause
    for _ in range(200):
        if recommender.requests:
            break
        await asyncio.sleep(0.005)
    assert len(recommender.requests) == 1
    await session.feed(pcm[16_000 * 2 :].tobytes())
    for _ in range(200):
        if len(repo.rows) >= 1:
            break
        await asyncio.sleep(0.005)
    # The second utterance's 12 words fire the rule, but a call is in flight: they wait.
    assert len(recommender.requests) == 1
    assert repo.rows[0].buffer_acao == "disparar:acumulo;ia_ocupada"
    recommender.gate.set()
    for _ in range(400):
        if len(recommender.requests) == 2:
            break
        await asyncio.sleep(0.005)
    assert len(recommender.requests) == 2
    assert recommender.requests[1].lines[0].text == "m n o p q r s t u v w x"
    assert recommender.requests[1].already_suggested == ("primeira",)
    await session.finish()
    assert len(repo.rows) == 3  # two segment rows and the timer-fired call's row
    timer_row = repo.rows[-1]
    assert timer_row.transcricao is None and timer_row.recomendacao_gerada == "S: segunda"


async def test_timer_fires_pending_text_after_five_seconds():
    recommender = FakeRecommender([ok("Pergunte o nome")])
    session, repo, _events, clock = make(["bom dia"], recommender)
    session.start()
    await session.feed(np.concatenate([silence(0.3), syllables(1.0), silence(1.0)]).tobytes())
    for _ in range(200):
        if repo.rows:
            break
        await asyncio.sleep(0.005)
    assert not recommender.requests
    clock.advance(5.01)
    for _ in range(200):
        if recommender.requests:
            break
        await asyncio.sleep(0.005)
    await session.finish()
    assert len(repo.rows) == 2
    timer_row = repo.rows[1]
    assert timer_row.buffer_acao == "disparar:tempo"
    assert timer_row.transcricao is None and timer_row.transcricao_completa == "bom dia"
    assert timer_row.recomendacao_gerada == "S: Pergunte o nome"


async def test_stray_word_after_long_silence_is_discarded():
    recommender = FakeRecommender()
    clock = FakeClock()
    session, repo, _, _ = make(["Ok"], recommender, clock=clock)
    clock.advance(60)
    await stream(session, np.concatenate([silence(0.3), syllables(0.8), silence(1.0)]))
    (row,) = repo.rows
    assert row.buffer_acao == "descartado:gap_longo"
    assert row.transcricao_completa == "Ok"
    assert row.recomendacao_gerada is None and not recommender.requests


async def test_reply_after_the_client_left_is_stored_but_not_sent():
    recommender = FakeRecommender([ok("tarde demais")])
    recommender.gate = asyncio.Event()
    session, repo, events, _ = make(["a b c d e f g h i j k l"], recommender)
    session.start()
    await session.feed(np.concatenate([silence(0.3), syllables(1.0), silence(1.0)]).tobytes())
    for _ in range(200):
        if recommender.requests:
            break
        await asyncio.sleep(0.005)
    session.client_gone()
    recommender.gate.set()
    await session.finish()
    (row,) = repo.rows
    assert row.recomendacao_gerada == "S: tarde demais"
    assert row.ts_rec_sent is None
    assert not any(isinstance(e, RecommendationEvent) for e in events)


async def test_transcription_failure_stores_an_empty_row_and_carries_on():
    transcriber = FakeTranscriber(["segunda frase"])
    transcriber.fail_next = 1
    session, repo, _events, _ = make(None, transcriber=transcriber)
    await stream(session, TWO_UTTERANCES)
    assert [r.transcricao for r in repo.rows] == ["", "segunda frase"]
    failed, ok = repo.rows
    assert (failed.stt_status, failed.stt_provider, failed.stt_error) == (
        SttStatus.ERROR,
        None,
        "fake: scripted failure",
    )
    assert (ok.stt_status, ok.stt_provider, ok.stt_latency_ms, ok.stt_error) == (SttStatus.OK, "fake", 1.0, None)


async def test_every_row_of_a_segment_says_who_transcribed_it_and_whether_there_was_text():
    session, repo, _events, _ = make(["", "bom dia"])
    await stream(session, TWO_UTTERANCES)
    silent, spoken = repo.rows
    assert (silent.transcricao, silent.stt_status, silent.stt_provider) == ("", SttStatus.EMPTY, "fake")
    assert (spoken.stt_status, spoken.stt_provider) == (SttStatus.OK, "fake")


async def test_all_providers_down_stores_the_cycle_as_an_stt_error_and_the_connection_stays_open():
    vendor = FakeTranscriber(["primeira", "segunda", "terceira"], name="elevenlabs")
    local = FakeTranscriber(["local"], name="whisper")
    vendor.fail_always = local.fail_always = True
    clock = FakeClock()
    routing = SmartRoutingTranscriber(
        {"elevenlabs": vendor, "whisper": local}, RoutingPolicy(("elevenlabs", "whisper")), clock
    )
    recommender = FakeRecommender()
    session, repo, events, _ = make(None, recommender=recommender, clock=clock, transcriber=routing)
    session.start()
    await session.feed(TWO_UTTERANCES[: 16_000 * 2].tobytes())  # the first utterance and its pause
    for _ in range(200):
        if repo.rows:
            break
        await asyncio.sleep(0.005)
    (down,) = repo.rows
    assert down.transcricao == "" and down.stt_status is SttStatus.ERROR and down.stt_provider is None
    assert down.stt_error.startswith("every transcription provider failed:")
    assert "elevenlabs: scripted failure" in down.stt_error and "whisper: scripted failure" in down.stt_error
    assert down.recomendacao_gerada is None and down.ts_trans_resp is not None
    assert session.connected and session.error is None
    vendor.fail_always = False  # the vendor is back: the same connection goes on
    await session.feed(TWO_UTTERANCES[16_000 * 2 :].tobytes())
    await session.finish()
    assert [(r.transcricao, r.stt_status, r.stt_provider) for r in repo.rows] == [
        ("", SttStatus.ERROR, None),
        ("primeira", SttStatus.OK, "elevenlabs"),
    ]
    assert [e.text for e in events if isinstance(e, TranscriptEvent)] == ["primeira"]


async def test_odd_sized_chunks_split_samples_and_frames_anywhere():
    session, repo, _, _ = make(["um", "dois"])
    pcm = TWO_UTTERANCES.tobytes()
    session.start()
    for offset in range(0, len(pcm), 998):
        await session.feed(pcm[offset : offset + 998])
    await session.finish()
    assert [r.transcricao for r in repo.rows] == ["um", "dois"]


async def test_silence_makes_no_rows():
    session, repo, _, _ = make(["nada"])
    await stream(session, silence(3.0))
    assert repo.rows == []
