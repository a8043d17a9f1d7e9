"""Recorded audio: is there a voice in it, how long is it (a WAV read by hand, no tools)."""

from __future__ import annotations

import io
import math
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path

FRAME_MS = 20
VOICE_FRAME_RMS = 300.0  # 16-bit scale; line noise stays well under, speech well over
VOICE_MIN_FRAMES = 5  # 100 ms of speech-level frames make a recording "not silent"


@dataclass(frozen=True)
class AudioStats:
    duration_seconds: float
    peak: int
    rms: float
    voiced_frames: int

    @property
    def has_voice(self) -> bool:
        return self.voiced_frames >= VOICE_MIN_FRAMES


def analyse(source: Path | bytes) -> AudioStats:
    """Duration, peak, RMS and speech-level 20 ms frames of a 16-bit PCM WAV file (or of
    its bytes: a sealed recording is only ever opened in memory)."""
    with wave.open(io.BytesIO(source) if isinstance(source, bytes) else str(source),
                   "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        frames = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"expected 16-bit samples, got {8 * width}-bit")
    samples = array("h")
    samples.frombytes(frames[: len(frames) // 2 * 2])
    if channels > 1:
        samples = samples[::channels]
    n = len(samples)
    if n == 0:
        return AudioStats(0.0, 0, 0.0, 0)
    peak = max(abs(min(samples)), max(samples))
    total = 0.0
    voiced = 0
    step = max(1, rate * FRAME_MS // 1000)
    for start in range(0, n, step):
        chunk = samples[start:start + step]
        energy = sum(x * x for x in chunk)
        total += energy
        if math.sqrt(energy / len(chunk)) >= VOICE_FRAME_RMS:
            voiced += 1
    return AudioStats(n / rate, peak, math.sqrt(total / n), voiced)
