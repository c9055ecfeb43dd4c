"""The Prometheus exposition of /metrics."""

from __future__ import annotations

from balto.app.metrics import Metrics, parse
from balto.domain.interaction import IaStatus, Interaction
from balto.domain.vad import EarlyStartTiming


def test_exposition_has_every_family_and_histogram_buckets():
    metrics = Metrics()
    metrics.connections.inc()
    metrics.errors.inc(codigo="api_key_invalida")
    metrics.observe_interaction(
        Interaction(
            balcao_id="B1",
            conexao_id="c",
            segmento_inicio=0.0,
            stt_provider="whisper",
            stt_latency_ms=300.0,
            ia_status=IaStatus.OK,
            ia_provider="grok",
            ts_ai_req=10.0,
            ts_ai_resp=11.5,
        )
    )
    text = metrics.render()
    samples = parse(text)
    assert samples["balto_connections_total"] == 1
    assert samples['balto_errors_total{codigo="api_key_invalida"}'] == 1
    assert samples["balto_segments_total"] == 1
    assert samples['balto_stt_latency_seconds_bucket{provider="whisper",status="ok",le="0.25"}'] == 0
    assert samples['balto_stt_latency_seconds_bucket{provider="whisper",status="ok",le="0.5"}'] == 1
    assert samples['balto_stt_latency_seconds_count{provider="whisper",status="ok"}'] == 1
    assert samples['balto_llm_latency_seconds_sum{provider="grok",status="ok"}'] == 1.5
    for family in (
        "balto_storage_queue_depth",
        "balto_journal_entries",
        "balto_process_open_fds",
        "balto_process_resident_memory_bytes",
        "balto_ffmpeg_processes",
        "balto_asyncio_tasks",
    ):
        assert f"# TYPE {family} gauge" in text
    assert samples["balto_process_open_fds"] > 0


def test_the_early_start_and_voice_gauges_read_the_servers_timings_and_are_absent_without_them():
    metrics = Metrics()
    assert "balto_early_start_silence_ms" not in metrics.render()
    timing = EarlyStartTiming(hang_over_ms=450, earliest_ms=150)
    metrics.early_start_ms.read = lambda: timing.start_ms
    assert parse(metrics.render())["balto_early_start_silence_ms"] == 150
    timing.observe(0.2)
    assert parse(metrics.render())["balto_early_start_silence_ms"] == 250
    assert "balto_voice_start_silence_ms" not in metrics.render()
    voice = EarlyStartTiming(hang_over_ms=450, earliest_ms=150, scale=1.5)
    metrics.voice_start_ms.read = lambda: voice.start_ms
    voice.observe(0.1)
    assert parse(metrics.render())["balto_voice_start_silence_ms"] == 300


def test_the_decode_time_gauge_appears_once_local_whisper_has_timed_a_decode():
    metrics = Metrics()
    assert "balto_stt_decode_seconds" not in metrics.render()
    metrics.stt_decode_s.set(0.254)
    assert parse(metrics.render())["balto_stt_decode_seconds"] == 0.254
