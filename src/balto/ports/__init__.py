"""Ports: the interfaces the application needs from the outside world, named by role."""

from balto.ports.audio import AudioCleaner, AudioDecoder, DecodeError, SpeechDetector
from balto.ports.inference import Recommender, SpeakerEmbedder, SpeakerIdentifier, Transcriber, TranscriptionError
from balto.ports.storage import (
    ApiKeyRepository,
    FeedbackRepository,
    InteractionRepository,
    SpeakerProfileRepository,
)
from balto.ports.system import Clock

__all__ = [
    "ApiKeyRepository",
    "AudioCleaner",
    "AudioDecoder",
    "Clock",
    "DecodeError",
    "FeedbackRepository",
    "InteractionRepository",
    "Recommender",
    "SpeakerEmbedder",
    "SpeakerIdentifier",
    "SpeakerProfileRepository",
    "SpeechDetector",
    "Transcriber",
    "TranscriptionError",
]
