"""Recordings as engine samples: 8 kHz telephone WAV to 16 kHz floats, band-limited."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from ivr.transcribe.audio import ENGINE_RATE, AudioError, decode, resample


def _wav(samples: np.ndarray, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((samples * 32767).astype("<i2").tobytes())
    return out.getvalue()


def test_a_telephone_tone_keeps_its_pitch_and_length():
    t = np.arange(8000) / 8000
    audio = decode(_wav(0.5 * np.sin(2 * np.pi * 1000 * t)))
    assert audio.source_rate == 8000 and len(audio.data) == ENGINE_RATE
    spectrum = np.abs(np.fft.rfft(audio.data))
    assert abs(np.argmax(spectrum) * ENGINE_RATE / len(audio.data) - 1000) < 2
    assert abs(float(np.max(np.abs(audio.data))) - 0.5) < 0.02
    assert len(audio.pcm16()) == 2 * ENGINE_RATE


def test_same_rate_is_untouched_and_empty_is_empty():
    x = np.linspace(-1, 1, 100, dtype=np.float32)
    assert np.array_equal(resample(x, 16000, 16000), x)
    assert decode(_wav(np.zeros(0))).seconds == 0


@pytest.mark.parametrize("data", [b"", b"RIFF\x00\x00", b"not audio at all" * 10])
def test_not_a_wav_is_an_audio_error(data):
    with pytest.raises(AudioError):
        decode(data)
