"""Re-export of the benchmark's conversation builder, so tests and benchmarks use the same audio."""

from bench.audio import Conversation, build_conversation

__all__ = ["Conversation", "build_conversation"]
