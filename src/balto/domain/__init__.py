"""Pure domain objects: VAD policy and segmentation, the conversation buffer, interactions."""

from balto.domain.audio import AudioFormat, PcmChunk
from balto.domain.buffer import BufferAction, BufferDecision, BufferLine, ConversationBuffer, TriggerReason
from balto.domain.conversation import Checklist, Conversation
from balto.domain.interaction import (
    NENHUMA,
    Feedback,
    IaStatus,
    Interaction,
    RecommendationRequest,
    RecommendationResult,
    SttStatus,
    Suggestion,
    Transcript,
)
from balto.domain.keys import ApiKey
from balto.domain.playbook import ChecklistItem, Playbook, PlaybookError, PlaybookRule, RuleCooldowns, fold
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
    "Checklist",
    "ChecklistItem",
    "Conversation",
    "ConversationBuffer",
    "Feedback",
    "IaStatus",
    "Interaction",
    "NoiseFloor",
    "PcmChunk",
    "Playbook",
    "PlaybookError",
    "PlaybookRule",
    "RecommendationRequest",
    "RecommendationResult",
    "RuleCooldowns",
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
    "fold",
]
