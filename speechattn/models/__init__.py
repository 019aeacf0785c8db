"""Task models built on the truncated encoder (no training code here)."""

from speechattn.models.speaker import SpeakerEmbedder

__all__ = ["SpeakerEmbedder"]
