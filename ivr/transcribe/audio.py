"""A recording's WAV bytes as the 16 kHz mono float samples speech engines take (pure)."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

import numpy as np

ENGINE_RATE = 16000  # what both engines' models were trained on


class AudioError(ValueError):
    """The bytes are not a 16-bit PCM WAV file."""


@dataclass(frozen=True)
class Samples:
    data: np.ndarray  # float32 in [-1, 1], ENGINE_RATE, mono
    source_rate: int

    @property
    def seconds(self) -> float:
        return len(self.data) / ENGINE_RATE

    def pcm16(self) -> bytes:
        """Signed 16-bit little-endian samples (what PocketSphinx reads)."""
        return bytes((np.clip(self.data, -1, 1) * 32767).astype("<i2").tobytes())


def decode(wav: bytes) -> Samples:
    """16-bit PCM WAV (Asterisk records 8 kHz mono) -> 16 kHz mono float samples."""
    try:
        with wave.open(io.BytesIO(wav)) as w:
            if w.getsampwidth() != 2:
                raise AudioError(f"{8 * w.getsampwidth()}-bit samples; expected 16-bit PCM")
            rate, channels = w.getframerate(), w.getnchannels()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"not a WAV file ({exc})") from None
    data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return Samples(resample(data, rate, ENGINE_RATE), rate)


def resample(data: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling through the spectrum (zero-padded or truncated).

    Hand-written rather than a dependency: numpy is already here (the engines need it),
    recordings are at most a few minutes, and for telephone audio (8 kHz up to 16 kHz)
    spectral zero-padding is the exact band-limited interpolation. scipy or soxr would
    add a compiled dependency for one call.
    """
    if rate == target or len(data) == 0:
        return data.astype(np.float32)
    n = int(round(len(data) * target / rate))
    spectrum = np.fft.rfft(data)
    out = np.fft.irfft(spectrum, n=n) * (n / len(data))
    return out.astype(np.float32)
