"""The speech engine interface (the engines themselves are listed in registry.py).

An engine turns 16 kHz samples into text with a confidence. It is made once per worker
process (models take a second or two to load) and then used for many recordings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the engines' libraries (numpy) load in the worker processes only
    from ivr.transcribe.audio import Samples

ENGINE_SETTING = "IVR_TRANSCRIBE_ENGINE"
MODEL_SETTING = "IVR_TRANSCRIBE_MODEL_PATH"
OFF = "off"


class EngineUnavailable(RuntimeError):
    """The configured engine or model cannot be loaded; the message names the setting."""


@dataclass(frozen=True)
class Heard:
    """What an engine made of one recording."""

    text: str
    confidence: float  # 0..1, the engine's own estimate (not comparable across engines)


class Engine(Protocol):
    name: str
    version: str  # library and model, e.g. "faster-whisper 1.2.1, tiny.en int8"

    def languages(self) -> frozenset[str]:
        """Primary language subtags the loaded model transcribes ('en', 'es')."""
        ...

    def transcribe(self, audio: Samples, language: str, hints: Sequence[str]) -> Heard:
        """The words in `audio`; `hints` are phrases likely to be said (an intake vocabulary,
        the red flags), used where the engine can bias towards them."""
        ...


def primary(language: str) -> str:
    """'es-US' -> 'es'."""
    return language.split("-", 1)[0].lower()
