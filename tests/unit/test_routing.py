"""SMART_ROUTING: the breaker's state machine and the order by segment length (pure, literal times),
then the routing transcriber over fakes with an injected clock."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from balto.app.routing import SmartRoutingTranscriber
from balto.domain.routing import BreakerState, CircuitBreaker, RoutingPolicy
from balto.ports.inference import TranscriptionError
from tests.fakes import FakeClock, FakeTranscriber

# -- the circuit breaker -------------------------------------------------------------------------


def test_breaker_opens_on_the_nth_failure_within_the_window():
    breaker = CircuitBreaker(failures=3, window_s=60, cooldown_s=30)
    assert breaker.record_failure(0.0) is False
    assert breaker.record_failure(10.0) is False
    assert breaker.allow(20.0) and breaker.state is BreakerState.CLOSED
    assert breaker.record_failure(59.0) is True
    assert breaker.state is BreakerState.OPEN and not breaker.allow(59.0)


def test_failures_older_than_the_window_are_forgotten():
    breaker = CircuitBreaker(failures=3, window_s=60, cooldown_s=30)
    breaker.record_failure(0.0)
    breaker.record_failure(30.0)
    assert breaker.record_failure(60.01) is False  # the one at 0 s left the window
    assert breaker.state is BreakerState.CLOSED
    assert breaker.record_failure(61.0) is True


def test_a_success_forgets_earlier_failures():
    breaker = CircuitBreaker(failures=2, window_s=60, cooldown_s=30)
    breaker.record_failure(0.0)
    assert breaker.record_success(1.0) is BreakerState.CLOSED
    assert breaker.record_failure(2.0) is False


def test_after_the_cool_down_one_probe_goes_through_and_its_success_closes_the_breaker():
    breaker = CircuitBreaker(failures=1, window_s=60, cooldown_s=30)
    breaker.record_failure(100.0)
    assert not breaker.allow(129.99)
    assert breaker.retry_in(120.0) == pytest.approx(10.0)
    assert breaker.allow(130.0)  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow(130.1)  # a concurrent caller keeps skipping while the probe is out
    assert breaker.record_success(131.0) is BreakerState.HALF_OPEN
    assert breaker.state is BreakerState.CLOSED and breaker.allow(131.0)


def test_a_failed_probe_opens_the_breaker_for_another_cool_down():
    breaker = CircuitBreaker(failures=1, window_s=60, cooldown_s=30)
    breaker.record_failure(0.0)
    assert breaker.allow(30.0)
    assert breaker.record_failure(31.0) is True
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow(60.0)
    assert breaker.allow(61.0)


def test_a_probe_that_ends_without_a_verdict_lets_the_next_caller_probe():
    breaker = CircuitBreaker(failures=1, window_s=60, cooldown_s=30)
    breaker.record_failure(0.0)
    assert breaker.allow(30.0)
    breaker.release()
    assert breaker.allow(30.5)


def test_a_late_failure_while_open_does_not_restart_the_cool_down():
    breaker = CircuitBreaker(failures=1, window_s=60, cooldown_s=30)
    breaker.record_failure(0.0)
    assert breaker.record_failure(20.0) is False
    assert breaker.allow(30.0)


@pytest.mark.parametrize("kwargs", [{"failures": 0}, {"window_s": 0}, {"cooldown_s": -1}])
def test_a_breaker_that_could_never_work_is_refused(kwargs):
    with pytest.raises(ValueError):
        CircuitBreaker(**kwargs)


# -- the order by segment length -----------------------------------------------------------------


def test_short_segments_go_to_the_designated_provider_first():
    policy = RoutingPolicy(("elevenlabs", "assemblyai", "whisper"), short_segment_s=1.5, short_provider="whisper")
    assert policy.order(0.9) == ("whisper", "elevenlabs", "assemblyai")
    assert policy.order(1.4999) == ("whisper", "elevenlabs", "assemblyai")
    assert policy.order(1.5) == ("elevenlabs", "assemblyai", "whisper")
    assert policy.order(12.0) == ("elevenlabs", "assemblyai", "whisper")


def test_a_short_provider_outside_the_list_serves_only_short_segments():
    policy = RoutingPolicy(("elevenlabs", "assemblyai"), short_segment_s=1.0, short_provider="whisper")
    assert policy.order(0.5) == ("whisper", "elevenlabs", "assemblyai")
    assert policy.order(3.0) == ("elevenlabs", "assemblyai")
    assert policy.names == ("elevenlabs", "assemblyai", "whisper")


def test_without_a_short_provider_every_segment_takes_the_list():
    policy = RoutingPolicy(("assemblyai", "whisper"))
    assert policy.order(0.1) == policy.order(10.0) == ("assemblyai", "whisper")
    with pytest.raises(ValueError):
        RoutingPolicy(())


# -- the routing transcriber over fakes ----------------------------------------------------------


def seconds(s: float) -> np.ndarray:
    return np.zeros(int(s * 16_000), np.int16)


def router(*fakes: FakeTranscriber, clock=None, timeout_s=1.0, short=None, short_s=0.0, failures=2, cooldown=30.0):
    clock = clock or FakeClock()
    policy = RoutingPolicy(tuple(f.name for f in fakes if f.name != short), short_s, short)
    return SmartRoutingTranscriber(
        {f.name: f for f in fakes},
        policy,
        clock,
        timeout_s=timeout_s,
        new_breaker=lambda: CircuitBreaker(failures, 60.0, cooldown),
    )


async def test_the_first_provider_that_answers_serves_the_segment():
    first, second = FakeTranscriber(["olá"], name="elevenlabs"), FakeTranscriber(["oi"], name="whisper")
    transcript = await router(first, second).transcribe(seconds(2), "pt")
    assert (transcript.text, transcript.provider) == ("olá", "elevenlabs")
    assert len(second.calls) == 0


async def test_a_failing_provider_hands_over_to_the_next(caplog):
    first, second = FakeTranscriber(name="elevenlabs"), FakeTranscriber(["bom dia"], name="whisper")
    first.fail_next = 1
    with caplog.at_level(logging.INFO, logger="balto.app.routing"):
        transcript = await router(first, second).transcribe(seconds(2), "pt")
    assert (transcript.text, transcript.provider) == ("bom dia", "whisper")
    assert "served by whisper after elevenlabs: scripted failure" in caplog.text


async def test_a_provider_that_does_not_answer_in_time_hands_over_to_the_next():
    slow = FakeTranscriber(["tarde demais"], delay_s=5.0, name="assemblyai")
    fast = FakeTranscriber(["a tempo"], name="whisper")
    loop = asyncio.get_running_loop()
    started = loop.time()
    transcript = await router(slow, fast, timeout_s=0.05).transcribe(seconds(2), "pt")
    assert (transcript.text, transcript.provider) == ("a tempo", "whisper")
    assert loop.time() - started < 1.0


async def test_the_last_provider_is_not_cut_short_having_nobody_to_hand_over_to():
    slow_vendor = FakeTranscriber(["do fornecedor"], delay_s=5.0, name="elevenlabs")
    slow_local = FakeTranscriber(["local, devagar"], delay_s=0.2, name="whisper")
    transcript = await router(slow_vendor, slow_local, timeout_s=0.05).transcribe(seconds(2), "pt")
    assert (transcript.text, transcript.provider) == ("local, devagar", "whisper")


async def test_a_crashing_provider_is_a_failing_provider():
    class Crashing(FakeTranscriber):
        async def transcribe(self, pcm, language=None):
            raise RuntimeError("kaput")

    transcript = await router(Crashing(name="openai"), FakeTranscriber(["ok"], name="whisper")).transcribe(seconds(2))
    assert transcript.provider == "whisper"


async def test_the_breaker_skips_a_provider_that_keeps_failing_and_probes_it_after_the_cool_down(caplog):
    clock = FakeClock()
    vendor = FakeTranscriber(lambda pcm: "do fornecedor", name="elevenlabs")
    local = FakeTranscriber(lambda pcm: "local", name="whisper")
    vendor.fail_always = True
    routing = router(vendor, local, clock=clock, failures=2, cooldown=30.0)
    with caplog.at_level(logging.WARNING, logger="balto.app.routing"):
        for _ in range(2):
            assert (await routing.transcribe(seconds(2))).provider == "whisper"
            clock.advance(1)
    assert routing.breaker("elevenlabs").state is BreakerState.OPEN
    assert "elevenlabs failed 2 times within 60 s; skipping it for 30 s" in caplog.text
    for _ in range(5):  # open: not even called
        assert (await routing.transcribe(seconds(2))).provider == "whisper"
        clock.advance(5)
    assert len(vendor.calls) == 2
    clock.advance(5)  # 31 s after it opened
    vendor.fail_always = False
    with caplog.at_level(logging.INFO, logger="balto.app.routing"):
        assert (await routing.transcribe(seconds(2))).provider == "elevenlabs"  # the probe, answered
    assert routing.breaker("elevenlabs").state is BreakerState.CLOSED
    assert "elevenlabs answered again" in caplog.text
    assert (await routing.transcribe(seconds(2))).provider == "elevenlabs"


async def test_a_failed_probe_keeps_the_provider_out_for_another_cool_down():
    clock = FakeClock()
    vendor, local = FakeTranscriber(name="assemblyai"), FakeTranscriber(lambda pcm: "local", name="whisper")
    vendor.fail_always = True
    routing = router(vendor, local, clock=clock, failures=1, cooldown=30.0)
    await routing.transcribe(seconds(2))
    clock.advance(30)
    await routing.transcribe(seconds(2))  # the probe fails
    assert len(vendor.calls) == 2
    clock.advance(29)
    await routing.transcribe(seconds(2))
    assert len(vendor.calls) == 2


async def test_short_segments_go_to_local_whisper_first():
    vendor = FakeTranscriber(lambda pcm: "do fornecedor", name="elevenlabs")
    local = FakeTranscriber(lambda pcm: "local", name="whisper")
    routing = router(vendor, local, short="whisper", short_s=1.5)
    assert (await routing.transcribe(seconds(0.8))).provider == "whisper"
    assert (await routing.transcribe(seconds(3.0))).provider == "elevenlabs"
    assert (len(vendor.calls), len(local.calls)) == (1, 1)


async def test_a_short_segment_falls_back_to_the_list_when_whisper_fails():
    vendor = FakeTranscriber(lambda pcm: "do fornecedor", name="elevenlabs")
    local = FakeTranscriber(name="whisper")
    local.fail_next = 1
    transcript = await router(vendor, local, short="whisper", short_s=1.5).transcribe(seconds(0.8))
    assert transcript.provider == "elevenlabs"


async def test_when_every_provider_fails_the_error_says_why_for_each():
    clock = FakeClock()
    a, b = FakeTranscriber(delay_s=5.0, name="elevenlabs"), FakeTranscriber(name="whisper")
    b.fail_always = True
    routing = router(a, b, clock=clock, timeout_s=0.05, failures=1)
    with pytest.raises(TranscriptionError) as info:
        await routing.transcribe(seconds(2))
    message = str(info.value)
    assert message.startswith("every transcription provider failed:")
    assert "elevenlabs: no answer within 0.05 s" in message and "whisper: scripted failure" in message
    with pytest.raises(TranscriptionError, match=r"elevenlabs: skipped for 30 s more.*whisper: skipped"):
        await routing.transcribe(seconds(2))  # both breakers now open: nobody is called


async def test_a_cancelled_probe_leaves_the_breaker_ready_for_the_next_probe():
    clock = FakeClock()
    vendor = FakeTranscriber(lambda pcm: "ok", name="elevenlabs")
    vendor.fail_next = 1
    routing = router(vendor, FakeTranscriber(lambda pcm: "local", name="whisper"), clock=clock, failures=1)
    await routing.transcribe(seconds(2))
    clock.advance(31)
    vendor.delay_s = 5.0
    task = asyncio.create_task(routing.transcribe(seconds(2)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    vendor.delay_s = 0.0
    assert (await routing.transcribe(seconds(2))).provider == "elevenlabs"


def test_every_provider_in_the_policy_needs_a_transcriber():
    with pytest.raises(ValueError, match="no transcriber for whisper"):
        SmartRoutingTranscriber(
            {"elevenlabs": FakeTranscriber(name="elevenlabs")},
            RoutingPolicy(("elevenlabs",), 1.0, "whisper"),
            FakeClock(),
        )
