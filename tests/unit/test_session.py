"""The application service, end to end through its ports, with in-memory fakes and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
import pytest

from balto.adapters.pcm import PcmDecoder
from balto.adapters.playbook import PlaybookRecommender
from balto.app.routing import SmartRoutingTranscriber
from balto.app.session import (
    ChecklistEvent,
    CounterSession,
    PipelineDeps,
    RecommendationEvent,
    StreamFeed,
    TranscriptEvent,
)
from balto.domain.audio import AudioFormat
from balto.domain.interaction import IaStatus, Interaction, RecommendationResult, SttStatus
from balto.domain.playbook import ChecklistItem, Playbook, PlaybookRule
from balto.domain.routing import RoutingPolicy
from balto.domain.speaker import SpeakerMatch, SpeakerScore
from balto.domain.vad import EarlyStartTiming, SegmenterConfig, VadPolicy
from tests.fakes import (
    EnergySpeechDetector,
    FakeClock,
    FakeRecommender,
    FakeSpeakerIdentifier,
    FakeSpeechGate,
    FakeSpeechStream,
    FakeTranscriber,
    InMemoryFeedbackRepository,
    InMemoryInteractionRepository,
    ok,
)
from tests.support.audio import silence, syllables

TWO_UTTERANCES = np.concatenate([silence(0.5), syllables(1.0), silence(1.0), syllables(1.2), silence(1.0)])


def make(texts, recommender=None, clock=None, transcriber=None, **deps_fields):
    clock = clock or FakeClock()
    repo = InMemoryInteractionRepository()
    deps = PipelineDeps(
        transcriber=transcriber or FakeTranscriber(texts),
        interactions=repo,
        clock=clock,
        new_detector=EnergySpeechDetector,
        new_decoder=PcmDecoder,
        recommender=recommender,
        **{"tick_s": 0.005, **deps_fields},
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
    assert events[0].start_s == pytest.approx(0.5, abs=0.06) and events[0].end_s == pytest.approx(1.5, abs=0.06)


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


# -- the playbook, the checklist and conversations --------------------------------------------------------

HEADACHE = PlaybookRule(
    "dor_de_cabeca", ("Pergunte há quanto tempo dói", "Ofereça dipirona"), phrases=("dor de cabeça",), cooldown_s=0
)
CPF = ChecklistItem("cpf_nota", "Pedir o CPF na nota", phrases=("cpf na nota",))
FIDELIDADE = ChecklistItem("fidelidade", "Oferecer o programa de fidelidade", phrases=("programa de fidelidade",))
PLAYBOOK = Playbook("teste", (HEADACHE,), (CPF, FIDELIDADE))
ONE_UTTERANCE = np.concatenate([silence(0.3), syllables(1.0), silence(1.0)])


def with_playbook(texts, recommender=None, **kwargs):
    return make(
        texts,
        recommender,
        instant=PlaybookRecommender(PLAYBOOK),
        checklist=PLAYBOOK.checklist,
        feedback=InMemoryFeedbackRepository(),
        **kwargs,
    )


def cards(events, origin=None):
    return [e for e in events if isinstance(e, RecommendationEvent) and origin in (None, e.origin)]


def checklists(events):
    return [e for e in events if isinstance(e, ChecklistEvent)]


async def wait_for(condition, steps: int = 400):
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met in time")


async def test_playbook_answers_first_and_the_llm_after_without_repeating_it():
    recommender = FakeRecommender([ok("Ofereça dipirona", "Sugira repouso")])
    session, repo, events, clock = with_playbook(
        ["Bom dia eu estou com muita dor de cabeça", "você tem algum remédio"], recommender
    )
    await stream(session, TWO_UTTERANCES, clock=clock)

    first, second = repo.rows
    (playbook_card,) = cards(events, "playbook")
    assert playbook_card.interaction_uuid == first.uuid
    assert [(s.text, s.rule) for s in playbook_card.suggestions] == [
        ("Pergunte há quanto tempo dói", "dor_de_cabeca"),
        ("Ofereça dipirona", "dor_de_cabeca"),
    ]
    kinds = [(type(e).__name__, getattr(e, "origin", None)) for e in events[:3]]
    assert kinds == [("TranscriptEvent", None), ("RecommendationEvent", "playbook"), ("ChecklistEvent", None)]
    # The playbook is not "the AI": its row stays NULL / nao_chamada, its card has columns of its own.
    assert first.recomendacao_gerada is None and first.ia_status is IaStatus.NOT_CALLED
    assert first.playbook_suggestions == playbook_card.suggestions
    assert first.ts_trans_sent <= first.ts_playbook_sent
    # The LLM is told what the playbook showed; what it repeats anyway is stored but not shown again.
    assert recommender.requests[0].already_suggested == ("Pergunte há quanto tempo dói", "Ofereça dipirona")
    assert second.recomendacao_gerada == "S: Ofereça dipirona | S: Sugira repouso"
    (llm_card,) = cards(events, "llm")
    assert [s.text for s in llm_card.suggestions] == ["Sugira repouso"] and llm_card.interaction_uuid == second.uuid
    assert first.conversa_id == second.conversa_id is not None


async def test_without_an_llm_the_playbook_alone_suggests():
    session, repo, events, clock = with_playbook(["estou com dor de cabeça e febre há dois dias eu acho"])
    await stream(session, ONE_UTTERANCE, clock=clock)
    (row,) = repo.rows
    (card,) = cards(events)
    assert card.origin == "playbook" and row.playbook_suggestions == card.suggestions
    assert row.recomendacao_gerada is None and row.ia_status is IaStatus.NOT_CALLED


async def test_a_crashing_playbook_costs_its_card_not_the_cycle():
    class Broken(PlaybookRecommender):
        async def recommend(self, request):
            raise RuntimeError("regra quebrada")

    recommender = FakeRecommender([ok("Ofereça água")])
    session, repo, _events, _ = make(["a b c d e f g h i j k l"], recommender, instant=Broken(PLAYBOOK))
    await stream(session, ONE_UTTERANCE)
    (row,) = repo.rows
    assert row.recomendacao_gerada == "S: Ofereça água" and row.playbook_suggestions == ()


async def test_checklist_frames_at_start_on_each_tick_and_at_the_end():
    session, repo, events, clock = with_playbook(["bom dia, vai querer CPF na nota?", "só isso"])
    await stream(session, TWO_UTTERANCES, clock=clock)
    first, second = repo.rows
    start, ended = checklists(events)
    assert start.interaction_uuid == first.uuid and not start.ended
    assert [(item.id, done) for item, done in start.items] == [("cpf_nota", True), ("fidelidade", False)]
    assert ended.ended and ended.interaction_uuid is None and ended.conversation_id == first.conversa_id
    assert first.checklist == second.checklist == {"cpf_nota": True, "fidelidade": False}


async def test_a_known_customer_does_not_tick_the_attendants_checklist():
    customer = SpeakerMatch("c1", 0.9, (SpeakerScore("c1", "Maria", "cliente", 0.9, 0.95),))
    session, repo, _events, _ = with_playbook(
        ["cpf na nota"], new_speaker_identifier=lambda: FakeSpeakerIdentifier(customer)
    )
    await stream(session, ONE_UTTERANCE)
    assert repo.rows[0].checklist == {"cpf_nota": False, "fidelidade": False}


async def test_silence_ends_the_conversation_and_the_next_one_starts_afresh():
    recommender = FakeRecommender([ok("Pergunte a idade"), ok("Pergunte a idade")])
    session, repo, events, clock = with_playbook(
        ["cpf na nota, estou com dor de cabeça desde ontem à noite", "dor de cabeça também, de manhã até agora"],
        recommender,
        conversation_end_silence_s=60.0,
    )
    session.start()
    await session.feed(ONE_UTTERANCE.tobytes())
    await wait_for(lambda: len(repo.rows) == 1)
    clock.advance(60.0)  # not more than 60 s yet: the conversation goes on
    await asyncio.sleep(0.05)
    assert [e.ended for e in checklists(events)] == [False]
    clock.advance(0.5)
    await wait_for(lambda: len(checklists(events)) == 2)
    assert checklists(events)[-1].ended
    await session.feed(ONE_UTTERANCE.tobytes())
    await wait_for(lambda: len(repo.rows) == 2)
    await session.finish()

    first, second = repo.rows
    assert first.conversa_id != second.conversa_id
    assert first.checklist == {"cpf_nota": True, "fidelidade": False}
    assert second.checklist == {"cpf_nota": False, "fidelidade": False}  # a fresh checklist
    # The same cards and the LLM's same suggestion may be shown again to the next customer...
    playbook_cards = cards(events, "playbook")
    assert len(playbook_cards) == 2 and playbook_cards[0].suggestions == playbook_cards[1].suggestions
    assert [len(c.suggestions) for c in cards(events, "llm")] == [1, 1]
    # ...and the LLM no longer sees the previous customer's words.
    assert recommender.requests[1].history == ()
    assert "cpf" not in recommender.requests[1].context


async def test_a_segment_after_a_long_silence_starts_a_new_conversation_even_between_ticks():
    session, repo, events, clock = with_playbook(["cpf na nota", "bom dia"], tick_s=3600.0)
    session.start()
    await session.feed(ONE_UTTERANCE.tobytes())
    await wait_for(lambda: len(repo.rows) == 1)
    clock.advance(61.0)
    await session.feed(ONE_UTTERANCE.tobytes())
    await session.finish()
    first, second = repo.rows
    assert first.conversa_id != second.conversa_id
    assert [(e.ended, e.conversation_id) for e in checklists(events)] == [
        (False, first.conversa_id),
        (True, first.conversa_id),
        (False, second.conversa_id),
        (True, second.conversa_id),
    ]


async def test_feedback_is_stored_for_this_counters_interactions_only():
    session, repo, events, clock = with_playbook(["dor de cabeça"])
    await stream(session, ONE_UTTERANCE, clock=clock)
    (card,) = cards(events)
    feedback = session._deps.feedback
    assert await session.feedback(card.interaction_uuid.upper(), True, "playbook")
    (stored,) = feedback.rows
    assert (stored.interacao_uuid, stored.util, stored.origem, stored.balcao_id, stored.conexao_id) == (
        card.interaction_uuid,
        True,
        "playbook",
        "B1",
        "c1",
    )
    earlier = Interaction(balcao_id="B1", conexao_id="old")
    other_counter = Interaction(balcao_id="B2", conexao_id="x")
    await repo.add(earlier)
    await repo.add(other_counter)
    assert await session.feedback(earlier.uuid, False)  # a late tap on an earlier connection's card
    assert not await session.feedback(other_counter.uuid, True)
    assert not await session.feedback("00000000-0000-0000-0000-000000000000", True)
    assert not await session.feedback("não é um uuid", True)
    assert len(feedback.rows) == 2


async def test_a_segment_the_speech_gate_rejects_is_stored_untranscribed_and_unidentified():
    gate = FakeSpeechGate([False, True])
    transcriber = FakeTranscriber(["você tem algum remédio"])
    speakers = FakeSpeakerIdentifier(SpeakerMatch("c1", 0.9, (SpeakerScore("c1", "Maria", "cliente", 0.9, 0.95),)))
    session, repo, events, clock = make(
        [], transcriber=transcriber, speech_gate=gate, new_speaker_identifier=lambda: speakers
    )
    await stream(session, TWO_UTTERANCES, clock=clock)

    noise, speech = repo.rows
    assert gate.calls == 2 and len(transcriber.calls) == 1  # only the second segment reached Whisper
    assert len(speakers.calls) == 1
    assert noise.transcricao == "" and noise.stt_status is SttStatus.EMPTY and noise.stt_provider == "fake-gate"
    assert noise.speaker is None and noise.ts_trans_resp is not None
    assert speech.transcricao == "você tem algum remédio" and speech.stt_provider == "fake"
    assert [type(e) for e in events] == [TranscriptEvent]  # nothing is sent for the rejected segment


async def test_a_failing_speech_gate_lets_every_segment_through():
    gate = FakeSpeechGate([], fail=True)
    session, repo, _events, clock = make(["um", "dois"], speech_gate=gate)
    await stream(session, TWO_UTTERANCES, clock=clock)
    assert [r.transcricao for r in repo.rows] == ["um", "dois"]


async def test_the_speech_gate_reads_the_pause_gates_stream_when_it_runs():
    gate = FakeSpeechGate([True, True])  # would pass both: it is not asked
    speech = FakeSpeechStream(lambda first: 0.0 if first < 2 * 16_000 else 0.9)  # the first sound is not a voice
    transcriber = FakeTranscriber(["você tem algum remédio"])
    session, repo, _, clock = make([], transcriber=transcriber, speech_gate=gate, new_speech_stream=lambda: speech)
    await stream(session, TWO_UTTERANCES, clock=clock)

    noise, voice = repo.rows
    assert gate.calls == 0 and len(transcriber.calls) == 1
    assert noise.transcricao == "" and noise.stt_status is SttStatus.EMPTY and noise.stt_provider == "fake-gate"
    assert voice.transcricao == "você tem algum remédio"
    # The second segment's last windows were in the queued half second: they went to the model at once.
    assert speech.fed >= round(voice.segmento_fim * 16_000) - 512


async def test_without_the_stream_the_speech_gate_runs_on_each_segment():
    gate = FakeSpeechGate([False, True])
    failing = FakeSpeechStream(lambda _: 0.9, fail=True)
    session, repo, _events, clock = make(["dois"], speech_gate=gate, new_speech_stream=lambda: failing)
    await stream(session, TWO_UTTERANCES, clock=clock)
    assert gate.calls == 2 and [r.transcricao for r in repo.rows] == ["", "dois"]


# -- early start: a segment heard during the VAD's hang-over ------------------------------------------------


def sized(pcm: np.ndarray) -> str:
    return f"{pcm.size} amostras"


async def heard_with(
    early: bool | Callable[[], bool],
    pcm: np.ndarray,
    timing: EarlyStartTiming | None = None,
    voice_timing: EarlyStartTiming | None = None,
    **deps_fields,
):
    transcriber = FakeTranscriber(sized)
    speakers = FakeSpeakerIdentifier(SpeakerMatch("c1", 0.9, (SpeakerScore("c1", "Maria", "cliente", 0.9, 0.95),)))
    session, repo, events, clock = make(
        [],
        transcriber=transcriber,
        new_speaker_identifier=lambda: speakers,
        early_start=early if callable(early) else (lambda: True) if early else None,
        early_timing=timing,
        voice_timing=voice_timing,
        **deps_fields,
    )
    session.start()
    for offset in range(0, pcm.size, 480):  # 30 ms pieces, as they come: the offer at 150 ms of silence
        await session.feed(pcm[offset : offset + 480].tobytes())
        for _ in range(10):  # let the front-end, and any early hearing, run before the next piece
            await asyncio.sleep(0)
        clock.advance(0.03)
    await session.finish()
    return session, repo, events, transcriber, speakers


async def test_a_segment_heard_during_the_hang_over_is_the_segment_that_closes():
    pcm = np.concatenate([silence(0.5), syllables(1.0), silence(1.0)])
    session, repo, events, transcriber, speakers = await heard_with(True, pcm)
    _, late_repo, late_events, late_transcriber, _ = await heard_with(False, pcm)

    (row,), (late_row,) = repo.rows, late_repo.rows
    assert session.early_started == session.early_used == 1
    assert len(transcriber.calls) == 1 and np.array_equal(transcriber.calls[0], late_transcriber.calls[0])
    assert row.transcricao == late_row.transcricao and (row.segmento_inicio, row.segmento_fim) == (
        late_row.segmento_inicio,
        late_row.segmento_fim,
    )
    assert [e.text for e in events] == [e.text for e in late_events]
    # Requested before the segment closed (the hang-over had 300 ms to go), answered by then.
    assert row.ts_trans_req < row.ts_segment_closed <= row.ts_trans_sent
    assert late_row.ts_segment_closed <= late_row.ts_trans_req
    assert speakers.listened == [transcriber.calls[0].size] and len(speakers.calls) == 1
    assert row.speaker is not None


async def test_speech_that_comes_back_drops_the_early_hearing_and_the_longer_segment_is_heard():
    pcm = np.concatenate([silence(0.5), syllables(1.0), silence(0.3), syllables(1.0), silence(1.0)])
    session, repo, _events, transcriber, speakers = await heard_with(True, pcm)
    (row,) = repo.rows  # 300 ms is under the hang-over: one segment
    assert (session.early_started, session.early_used) == (2, 1)
    first, second = (call.size for call in transcriber.calls)
    assert first < second
    assert row.transcricao == f"{second} amostras"  # the dropped hearing's text went nowhere
    assert speakers.listened == [first, second] and speakers.calls == [(second, "B1")]


async def test_a_timed_voice_is_not_worked_out_for_a_hearing_that_speech_breaks_first():
    pcm = np.concatenate([silence(0.5), syllables(1.0), silence(0.3), syllables(1.0), silence(1.0)])
    voice_timing = EarlyStartTiming(hang_over_ms=450, earliest_ms=150, scale=1.5)
    voice_timing.observe(0.05)  # a voice takes 50 ms here: asked for at 375 ms of silence
    session, repo, _events, transcriber, speakers = await heard_with(True, pcm, voice_timing=voice_timing)
    (row,) = repo.rows
    assert (session.early_started, session.early_used) == (2, 1)
    first, second = (call.size for call in transcriber.calls)
    # The hearing of the 300 ms pause was transcribed (and dropped), but its voice never computed.
    assert first < second and speakers.listened == [second] and speakers.calls == [(second, "B1")]
    assert row.transcricao == f"{second} amostras" and row.speaker is not None
    assert row.ts_trans_req < row.ts_segment_closed  # the kept hearing still started early


async def test_a_voice_not_due_when_the_segment_closes_is_worked_out_then():
    # The stream ends 250 ms into the pause: the segment closes there, before the voice was due.
    pcm = np.concatenate([silence(0.5), syllables(1.0), silence(0.25)])
    voice_timing = EarlyStartTiming(hang_over_ms=450, earliest_ms=150)
    voice_timing.observe(0.0)  # not before the last piece of the hang-over
    session, repo, events, transcriber, speakers = await heard_with(True, pcm, voice_timing=voice_timing)
    (row,) = repo.rows
    assert session.early_started == session.early_used == 1
    assert speakers.listened == [transcriber.calls[0].size] and row.speaker is not None
    assert [e.text for e in events] == [row.transcricao]


async def test_the_hearing_is_timed_to_its_transcript_not_to_a_voice_that_ends_later():
    pcm = np.concatenate([silence(0.5), syllables(1.0), silence(0.3), syllables(1.0), silence(1.0)])
    timing = EarlyStartTiming(hang_over_ms=450, earliest_ms=150)
    timing.observe(0.05)  # hearings take 50 ms: start at 400 ms of silence
    voice_timing = EarlyStartTiming(hang_over_ms=450, earliest_ms=150)
    voice_timing.observe(0.0)  # the voice on the last piece before the close, after the transcript
    session, repo, _events, _transcriber, speakers = await heard_with(True, pcm, timing, voice_timing)
    (row,) = repo.rows
    assert (session.early_started, session.early_used) == (1, 1) and row.speaker is not None
    assert len(speakers.listened) == 1
    assert timing.start_ms == 425  # the transcript took no time on the fake clock: median of 50 and 0 ms


async def test_no_early_start_while_no_worker_is_free():
    pcm = np.concatenate([silence(0.5), syllables(1.0), silence(1.0)])
    session, repo, _events, transcriber, _ = await heard_with(lambda: False, pcm)
    (row,) = repo.rows
    assert session.early_started == 0 and len(transcriber.calls) == 1
    assert row.ts_segment_closed <= row.ts_trans_req


def free_from_call(n: int) -> Callable[[], bool]:
    """A worker pool that is busy for the first `n - 1` times it is asked, then free."""
    asked = 0

    def ready() -> bool:
        nonlocal asked
        asked += 1
        return asked >= n

    return ready


async def test_a_worker_that_comes_free_during_the_hang_over_still_hears_the_segment_early():
    pcm = np.concatenate([silence(0.5), syllables(1.0), silence(1.0)])
    session, repo, _events, transcriber, _ = await heard_with(free_from_call(3), pcm)
    _, late_repo, _, late_transcriber, _ = await heard_with(False, pcm)
    (row,), (late_row,) = repo.rows, late_repo.rows
    assert session.early_started == session.early_used == 1
    assert len(transcriber.calls) == 1 and np.array_equal(transcriber.calls[0], late_transcriber.calls[0])
    assert row.ts_trans_req < row.ts_segment_closed  # heard two pieces after the offer, before the close
    assert row.transcricao == late_row.transcricao


async def test_an_offer_that_waited_for_a_worker_is_forgotten_when_speech_comes_back():
    pcm = np.concatenate([silence(0.5), syllables(1.0), silence(0.3), syllables(1.0), silence(1.0)])
    # Busy through the first pause (at most six pieces of it), free during the second one.
    session, repo, _events, transcriber, _ = await heard_with(free_from_call(9), pcm)
    (row,) = repo.rows
    assert (session.early_started, session.early_used) == (1, 1)  # nothing heard of the shorter segment
    (call,) = transcriber.calls
    assert row.transcricao == f"{call.size} amostras" and row.ts_trans_req < row.ts_segment_closed


async def test_a_timed_early_start_waits_out_a_short_pause_and_still_hears_before_the_close():
    pcm = np.concatenate([silence(0.5), syllables(1.0), silence(0.3), syllables(1.0), silence(1.0)])
    timing = EarlyStartTiming(hang_over_ms=450, earliest_ms=150)
    timing.observe(0.05)  # hearings take 50 ms here: start at 400 ms of silence, not at the offer
    session, repo, _events, transcriber, _ = await heard_with(True, pcm, timing)
    (row,) = repo.rows
    # The 300 ms pause started nothing (without the timing it cost a hearing thrown away).
    assert (session.early_started, session.early_used) == (1, 1)
    (call,) = transcriber.calls
    assert row.transcricao == f"{call.size} amostras"
    assert row.ts_trans_req < row.ts_segment_closed <= row.ts_trans_req + 0.06  # two pieces before the close
    assert timing.start_ms == 425  # the hearing took no time on the fake clock: median of 50 and 0 ms


# -- the pause gate: noise in a pause, judged by a speech model streamed over the connection ------------

# A sentence, 210 ms of pause, 120 ms of a sound the VAD takes for speech, then silence.
NOISE_START = int((0.5 + 1.0 + 0.21) * 16_000)
NOISE_IN_A_PAUSE = np.concatenate([silence(0.5), syllables(1.0), silence(0.21), syllables(0.12), silence(1.0)])


def noise_is_not_a_voice(first_sample: int) -> float:
    return 0.0 if NOISE_START - 512 < first_sample < NOISE_START + int(0.12 * 16_000) else 0.9


async def test_noise_in_a_pause_keeps_the_early_hearing_and_closes_the_segment_on_time():
    stream = FakeSpeechStream(noise_is_not_a_voice)
    session, repo, events, transcriber, _ = await heard_with(True, NOISE_IN_A_PAUSE, new_speech_stream=lambda: stream)
    _, plain_repo, _, plain_transcriber, _ = await heard_with(True, NOISE_IN_A_PAUSE)

    (row,), (plain_row,) = repo.rows, plain_repo.rows
    assert session.early_started == session.early_used == 1 and len(transcriber.calls) == 1
    # Every piece went to the model, in order, in calls of half a second or as soon as a verdict was wanted.
    assert NOISE_IN_A_PAUSE.size - 8000 <= stream.fed <= NOISE_IN_A_PAUSE.size and stream.calls > 2
    # Without the gate the noise broke the pause: the hearing was thrown away, and the segment ran on.
    assert len(plain_transcriber.calls) == 2
    assert row.segmento_fim < plain_row.segmento_fim and row.segmento_fim < 1.5 + 0.21
    assert [e.text for e in events if isinstance(e, TranscriptEvent)] == [f"{transcriber.calls[0].size} amostras"]


async def test_a_voice_the_model_hears_in_a_pause_still_breaks_it():
    stream = FakeSpeechStream(lambda _: 0.9)
    session, repo, _, transcriber, _ = await heard_with(True, NOISE_IN_A_PAUSE, new_speech_stream=lambda: stream)
    (row,) = repo.rows
    assert (session.early_started, session.early_used) == (2, 1) and len(transcriber.calls) == 2
    assert row.segmento_fim > 1.5 + 0.21


async def test_a_failing_speech_stream_leaves_the_pauses_to_the_vad(caplog):
    stream = FakeSpeechStream(noise_is_not_a_voice, fail=True)
    session, repo, _, _, _ = await heard_with(True, NOISE_IN_A_PAUSE, new_speech_stream=lambda: stream)
    (row,) = repo.rows  # the segment is heard as without the gate
    assert (session.early_started, session.early_used) == (2, 1) and row.segmento_fim > 1.5 + 0.21
    assert sum("pause gate failed" in r.getMessage() for r in caplog.records) == 1


async def test_the_pause_gate_is_off_at_zero_ms():
    stream = FakeSpeechStream(noise_is_not_a_voice)
    session, _, _, _, _ = await heard_with(
        True,
        NOISE_IN_A_PAUSE,
        new_speech_stream=lambda: stream,
        segmenter_config=SegmenterConfig(pause_gate_ms=0),
    )
    assert stream.fed == 0 and (session.early_started, session.early_used) == (2, 1)


def test_the_stream_is_fed_in_half_second_calls_or_at_once_when_a_verdict_is_wanted():
    stream = FakeSpeechStream(lambda first: 0.9 if first < 4096 else 0.0)
    feed = StreamFeed(stream, threshold=0.5, batch_samples=8000)
    piece = np.zeros(1440, dtype=np.int16)
    assert [feed.push(piece) for _ in range(5)] == [0, 1440, 2880, 4320, 5760]
    assert stream.calls == 0  # 7200 samples queued
    feed.push(piece)
    assert (stream.calls, stream.fed) == (1, 8640)
    first = feed.push(np.zeros(480, dtype=np.int16), now=True)
    assert (stream.calls, stream.fed, first) == (2, 9120, 8640)
    assert feed.heard(0, 2) == [True, True] and feed.heard(first, 1) == [False]


async def test_the_stream_hands_the_segment_gate_a_spans_probabilities_feeding_what_it_needs():
    stream = FakeSpeechStream(lambda first: 0.9 if first < 1024 else 0.1)
    feed = StreamFeed(stream, threshold=0.5, batch_samples=8000)
    feed.push(np.zeros(1440, dtype=np.int16))
    assert stream.calls == 0
    assert (await feed.probabilities(0, 1000)).tolist() == pytest.approx([0.9, 0.9])  # fed now: windows 0 and 1
    assert stream.calls == 1
    feed.push(np.zeros(1440, dtype=np.int16))
    assert (await feed.probabilities(0, 1000)).tolist() == pytest.approx([0.9, 0.9])  # kept: nothing fed
    assert stream.calls == 1
    assert (await feed.probabilities(1024, 2880)).tolist() == pytest.approx([0.1, 0.1, 0.1])  # window 5 is not complete
    assert stream.calls == 2


class UnansweredStream:
    """A speech stream whose calls wait until the test answers them."""

    window_samples = 512

    def __init__(self) -> None:
        self.calls: list[Future[np.ndarray]] = []

    def feed(self, pcm: np.ndarray) -> Future[np.ndarray]:
        self.calls.append(Future())
        return self.calls[-1]


async def test_an_early_hearing_dropped_while_it_waits_for_the_stream_leaves_the_stream_whole():
    stream = UnansweredStream()
    feed = StreamFeed(stream, threshold=0.5)
    feed.push(np.zeros(1024, dtype=np.int16))
    reader = asyncio.create_task(feed.probabilities(0, 1024))  # the segment gate of an early hearing
    await asyncio.sleep(0)
    reader.cancel()  # speech came back: the hearing is dropped
    with pytest.raises(asyncio.CancelledError):
        await reader
    (call,) = stream.calls
    assert not call.cancelled()  # the model still hears that audio, so the stream has no gap
    call.set_result(np.array([0.9, 0.1], dtype=np.float32))
    assert feed.heard(0, 2) == [True, True] and feed.heard(960, 1) == [False]
