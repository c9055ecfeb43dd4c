"""Pure domain objects: VAD policy and segmentation, the conversation buffer, interactions."""

from balto.domain.audio import AudioFormat, PcmChunk
from balto.domain.buffer import BufferAction, BufferDecision, BufferLine, ConversationBuffer, TriggerReason
from balto.domain.interaction import (
    NENHUMA,
    IaStatus,
    Interaction,
    RecommendationRequest,
    RecommendationResult,
    SttStatus,
    Suggestion,
    Transcript,
)
from balto.domain.keys import ApiKey
from balto.domain.speaker import UNKNOWN, SpeakerMatch, SpeakerProfile, SpeakerScore
from balto.domain.vad import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    NoiseFloor,
    Segmenter,
    SegmenterConfig,
    SpeechSegment,
    VadPolicy,
    VadSettingsError,
)

__all__ = [
    "FRAME_SAMPLES",
    "NENHUMA",
    "SAMPLE_RATE",
    "UNKNOWN",
    "ApiKey",
    "AudioFormat",
    "BufferAction",
    "BufferDecision",
    "BufferLine",
    "ConversationBuffer",
    "IaStatus",
    "Interaction",
    "NoiseFloor",
    "PcmChunk",
    "RecommendationRequest",
    "RecommendationResult",
    "Segmenter",
    "SegmenterConfig",
    "SpeakerMatch",
    "SpeakerProfile",
    "SpeakerScore",
    "SpeechSegment",
    "SttStatus",
    "Suggestion",
    "Transcript",
    "TriggerReason",
    "VadPolicy",
    "VadSettingsError",
]
