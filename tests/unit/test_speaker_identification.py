"""Speaker identification and enrolment as the application runs them, on fakes: the LTAS embedder (a
real if crude voice feature) tells synthetic voices of different pitch apart."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from balto.app.session import CounterSession, TranscriptEvent
from balto.app.speakers import Enrollment, IdentificationConfig, SpeakerIdentification
from balto.domain.speaker import UNKNOWN, Calibration, EnrollmentError, SpeakerProfile
from tests.fakes import (
    EnergySpeechDetector,
    FakeRecommender,
    FakeSpeakerEmbedder,
    FakeTranscriber,
    InMemorySpeakerProfileRepository,
    ok,
)
from tests.support.audio import silence, syllables
from tests.support.speakers import identify_segment
from tests.unit.test_session import make

ATTENDANT, CUSTOMER, OTHER_CUSTOMER = 120.0, 320.0, 200.0  # pitches of three synthetic voices
CONFIG = IdentificationConfig(
    calibration=Calibration(threshold=0.95, slope=0.0, temperature=0.01), min_segment_s=1.0, cluster_threshold=0.95
)


def speech(pitch: float, seconds: float = 1.5) -> np.ndarray:
    return syllables(seconds, pitch_hz=pitch)


async def enrolled(
    embedder: FakeSpeakerEmbedder, profiles: InMemorySpeakerProfileRepository, pitch: float, name: str, role: str
):
    enrollment = Enrollment(embedder, profiles, EnergySpeechDetector)
    return (await enrollment.enroll(name, role, "B1", [(f"{name}.wav", speech(pitch, 8.0))])).profile


def session_with(identification: SpeakerIdentification | None, texts: list[str], recommender=None, transcriber=None):
    new_identifier = identification.for_connection if identification is not None else None
    session, repo, events, _ = make(
        texts, recommender=recommender, transcriber=transcriber, new_speaker_identifier=new_identifier
    )
    return session, repo, events


async def stream(session: CounterSession, *utterances: np.ndarray) -> None:
    pieces = [silence(0.5)]
    for u in utterances:
        pieces += [u, silence(1.0)]
    pcm = np.concatenate(pieces)
    session.start()
    for offset in range(0, pcm.size, 4000):
        await session.feed(pcm[offset : offset + 4000].tobytes())
    await session.finish()


async def test_rows_carry_who_spoke_and_the_llm_reads_the_roles():
    embedder, profiles = FakeSpeakerEmbedder(), InMemorySpeakerProfileRepository()
    ana = await enrolled(embedder, profiles, ATTENDANT, "Ana", "atendente")
    recommender = FakeRecommender([ok("Ofereça dipirona")])
    session, repo, events = session_with(
        SpeakerIdentification(embedder, profiles, config=CONFIG),
        ["Bom dia em que posso ajudar", "Estou com muita dor de cabeça desde ontem"],
        recommender,
    )
    await stream(session, speech(ATTENDANT), speech(CUSTOMER))

    first, second = repo.rows
    assert first.speaker.top_id == ana.id and first.speaker.top_name == "Ana" and first.speaker.top_role == "atendente"
    assert second.speaker.top_id == UNKNOWN and second.speaker.top_name == "cliente_1"
    assert second.speaker.top_role == "cliente"
    assert recommender.requests[0].context == (
        "Atendente: Bom dia em que posso ajudar\nCliente: Estou com muita dor de cabeça desde ontem"
    )
    transcripts = [e for e in events if isinstance(e, TranscriptEvent)]
    assert [e.speaker for e in transcripts] == ["Atendente", "Cliente"]
    assert transcripts[0].match == first.speaker and transcripts[1].match.top_name == "cliente_1"
    data = second.speaker_data
    assert data is not None and '"id": "desconhecido", "nome": "cliente_1", "papel": "cliente"' in data


async def test_unknown_voices_of_one_connection_are_told_apart():
    embedder, profiles = FakeSpeakerEmbedder(), InMemorySpeakerProfileRepository()
    await enrolled(embedder, profiles, ATTENDANT, "Ana", "atendente")
    identification = SpeakerIdentification(embedder, profiles, config=CONFIG)
    session, repo, _ = session_with(identification, ["um", "dois", "três", "quatro"])
    await stream(session, speech(CUSTOMER), speech(OTHER_CUSTOMER), speech(CUSTOMER, 2.0), speech(ATTENDANT))
    assert [r.speaker.top_name for r in repo.rows] == ["cliente_1", "cliente_2", "cliente_1", "Ana"]

    # Another connection starts counting again: the numbers are per conversation.
    other, repo2, _ = session_with(identification, ["cinco"])
    await stream(other, speech(OTHER_CUSTOMER))
    assert repo2.rows[0].speaker.top_name == "cliente_1"


async def test_with_nobody_enrolled_voices_are_numbered_but_get_no_role():
    identification = SpeakerIdentification(FakeSpeakerEmbedder(), InMemorySpeakerProfileRepository(), config=CONFIG)
    recommender = FakeRecommender([ok("x")])
    session, repo, _ = session_with(identification, ["a b c d e f", "g h i j k l"], recommender)
    await stream(session, speech(ATTENDANT), speech(CUSTOMER))
    assert [r.speaker.top_name for r in repo.rows] == ["voz_1", "voz_2"]
    assert all(r.speaker.top_role is None for r in repo.rows)
    assert recommender.requests[0].context == "a b c d e f\ng h i j k l"  # no role to label the lines with


async def test_segments_too_short_to_tell_are_not_identified():
    embedder, profiles = FakeSpeakerEmbedder(), InMemorySpeakerProfileRepository()
    await enrolled(embedder, profiles, ATTENDANT, "Ana", "atendente")
    config = IdentificationConfig(calibration=CONFIG.calibration, min_segment_s=3.0)
    session, repo, events = session_with(SpeakerIdentification(embedder, profiles, config=config), ["ok"])
    await stream(session, speech(ATTENDANT, 1.5))
    (row,) = repo.rows
    assert row.speaker is None and row.speaker_data is None
    assert embedder.calls == 1  # the enrolment only
    assert events[0].speaker is None and events[0].match is None


async def test_a_failing_identifier_does_not_lose_the_cycle():
    class Broken(FakeSpeakerEmbedder):
        def embed(self, pcm):
            raise RuntimeError("model crashed")

    identification = SpeakerIdentification(Broken(), InMemorySpeakerProfileRepository(), config=CONFIG)
    session, repo, _ = session_with(identification, ["ainda transcrito"])
    await stream(session, speech(CUSTOMER))
    (row,) = repo.rows
    assert row.transcricao == "ainda transcrito" and row.speaker is None


async def test_embedding_runs_on_the_executor_not_the_event_loop():
    threads: list[str] = []

    class Recording(FakeSpeakerEmbedder):
        def embed(self, pcm):
            threads.append(threading.current_thread().name)
            return super().embed(pcm)

    with ThreadPoolExecutor(1, thread_name_prefix="speaker") as executor:
        identification = SpeakerIdentification(Recording(), InMemorySpeakerProfileRepository(), executor, CONFIG)
        match = await identify_segment(identification.for_connection(), speech(CUSTOMER, 2.0), "B1")
    assert match is not None and threads and all(t.startswith("speaker") for t in threads)
    assert threading.current_thread() is threading.main_thread()


async def test_identification_and_transcription_overlap():
    """Speaker ID does not add its latency to the transcription's: the transcriber runs while the
    embedding is still being computed."""
    embedding_started, embedding_done = threading.Event(), threading.Event()
    seen_while_embedding: list[bool] = []

    class Slow(FakeSpeakerEmbedder):
        def embed(self, pcm):
            embedding_started.set()
            time.sleep(0.3)
            try:
                return super().embed(pcm)
            finally:
                embedding_done.set()

    class Watching(FakeTranscriber):
        async def transcribe(self, pcm, language=None):
            for _ in range(100):
                if embedding_started.is_set():
                    break
                await asyncio.sleep(0.01)
            seen_while_embedding.append(embedding_started.is_set() and not embedding_done.is_set())
            return await super().transcribe(pcm, language)

    identification = SpeakerIdentification(Slow(), InMemorySpeakerProfileRepository(), config=CONFIG)
    session, repo, _ = session_with(identification, [], transcriber=Watching(["olá"]))
    await stream(session, speech(CUSTOMER))
    assert seen_while_embedding == [True]
    assert repo.rows[0].speaker is not None and repo.rows[0].transcricao == "olá"


# -- enrolment -----------------------------------------------------------------------------------------


@pytest.fixture
def enrollment():
    return Enrollment(FakeSpeakerEmbedder(), InMemorySpeakerProfileRepository(), EnergySpeechDetector)


async def test_enrolment_averages_recordings_into_one_profile(enrollment):
    progress: list[str] = []
    result = await enrollment.enroll(
        " Ana ",
        "Atendente",
        "B1",
        [("a.wav", speech(ATTENDANT, 4.0)), ("b.wav", speech(ATTENDANT, 5.0))],
        progress=progress.append,
    )
    profile = result.profile
    assert (profile.name, profile.role, profile.balcao_id, profile.samples) == ("Ana", "atendente", "B1", 2)
    assert profile.embedder == "fake-ltas" and profile.id is not None
    assert progress == ["a.wav", "b.wav"]
    assert result.speech_s == pytest.approx(9.0, abs=1.5) and result.warnings
    assert [p.id for p in await enrollment.profiles.list("B1")] == [profile.id]


async def test_enrolment_without_balcao_is_for_every_balcao(enrollment):
    result = await enrollment.enroll("Gerente", "gerente", None, [("a.wav", speech(ATTENDANT, 12.0))])
    assert result.profile.balcao_id is None and result.warnings == ()
    assert [p.name for p in await enrollment.profiles.list("any")] == ["Gerente"]


async def test_silent_or_short_audio_is_refused_with_the_reason(enrollment):
    with pytest.raises(EnrollmentError, match=r"no speech found in quiet\.wav"):
        await enrollment.enroll(
            "Ana", "atendente", "B1", [("ok.wav", speech(ATTENDANT, 8.0)), ("quiet.wav", silence(5.0))]
        )
    with pytest.raises(EnrollmentError, match=r"only 2\.\d s of speech"):
        await enrollment.enroll("Ana", "atendente", "B1", [("short.wav", speech(ATTENDANT, 2.0))])
    assert await enrollment.profiles.list() == []


async def test_enrolling_the_same_name_again_needs_replace(enrollment):
    first = (await enrollment.enroll("Ana", "atendente", "B1", [("a.wav", speech(ATTENDANT, 8.0))])).profile
    with pytest.raises(EnrollmentError, match="already enrolled"):
        await enrollment.enroll("ana", "atendente", "B1", [("b.wav", speech(ATTENDANT, 8.0))])
    again = await enrollment.enroll("Ana", "atendente", "B1", [("b.wav", speech(ATTENDANT, 8.0))], replace=True)
    assert again.replaced == (first.id,)
    assert [p.id for p in await enrollment.profiles.list("B1")] == [again.profile.id]
    # The same name at another balcão is another person.
    await enrollment.enroll("Ana", "atendente", "B2", [("c.wav", speech(ATTENDANT, 8.0))])


async def test_enrolment_refuses_a_bad_role_or_no_name(enrollment):
    with pytest.raises(EnrollmentError, match="role"):
        await enrollment.enroll("Ana", "dona da loja", "B1", [("a.wav", speech(ATTENDANT, 8.0))])
    with pytest.raises(EnrollmentError, match="name"):
        await enrollment.enroll("  ", "atendente", "B1", [("a.wav", speech(ATTENDANT, 8.0))])


async def test_profiles_of_another_embedder_are_ignored():
    embedder, profiles = FakeSpeakerEmbedder(), InMemorySpeakerProfileRepository()
    await profiles.add(
        SpeakerProfile("Velho", "atendente", embedder.embed(speech(ATTENDANT)), "B1", embedder="resemblyzer")
    )
    identification = SpeakerIdentification(embedder, profiles, config=CONFIG)
    match = await identify_segment(identification.for_connection(), speech(ATTENDANT, 2.0), "B1")
    assert match is not None and match.top_id == UNKNOWN and match.top_name == "voz_1"


class HalvingCleaner:
    """A cleaner that halves the signal, or fails on demand."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls = 0

    def clean(self, pcm: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.fail:
            raise RuntimeError("scripted cleaner failure")
        return (pcm // 2).astype(np.int16)


class RecordingEmbedder(FakeSpeakerEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[np.ndarray] = []
        self.threads: set[str] = set()

    def embed(self, pcm: np.ndarray) -> np.ndarray:
        self.seen.append(pcm.copy())
        self.threads.add(threading.current_thread().name)
        return super().embed(pcm)


async def test_the_speaker_cleaner_runs_on_the_speaker_thread_before_the_embedding():
    embedder, cleaner = RecordingEmbedder(), HalvingCleaner()
    executor = ThreadPoolExecutor(1, thread_name_prefix="speaker")
    identification = SpeakerIdentification(
        embedder, InMemorySpeakerProfileRepository(), executor, CONFIG, cleaner=cleaner
    )
    pcm = speech(CUSTOMER, 2.0)
    assert await identify_segment(identification.for_connection(), pcm, "B1") is not None
    assert cleaner.calls == 1 and np.array_equal(embedder.seen[0], (pcm // 2).astype(np.int16))
    assert embedder.threads == {"speaker_0"}

    cleaner.fail = True  # a failing cleaner costs the segment its cleaning, not its speaker
    assert await identify_segment(identification.for_connection(), pcm, "B1") is not None
    assert np.array_equal(embedder.seen[1], pcm)
    executor.shutdown()
