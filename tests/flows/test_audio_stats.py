"""What ivr.flows.audio.analyse makes of a recording: its length, peak, RMS and the
20 ms frames loud enough to be speech (numpy does the arithmetic)."""

from __future__ import annotations

import io
import math
import wave
from array import array

from ivr.flows.audio import VOICE_MIN_FRAMES, analyse


def _wav(samples: list[int], rate: int = 8000, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(array("h", samples).tobytes())
    return out.getvalue()


def test_half_a_second_of_speech_level_tone_then_silence():
    tone = [round(1000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(4000)]
    stats = analyse(_wav(tone + [0] * 4000))
    assert stats.duration_seconds == 1.0
    assert stats.peak == 1000
    assert stats.voiced_frames == 25  # 0.5 s of 20 ms frames
    assert stats.has_voice
    assert math.isclose(stats.rms, 1000 / math.sqrt(2) / math.sqrt(2), rel_tol=0.01)


def test_a_short_last_frame_counts_and_line_noise_is_silence():
    loud_tail = [20] * 8000 + [-32768, 32767] * 40  # 80 samples: a frame of 10 ms
    stats = analyse(_wav(loud_tail))
    assert stats.voiced_frames == 1 and not stats.has_voice
    assert stats.peak == 32768
    assert analyse(_wav([0] * 10)).voiced_frames == 0
    assert VOICE_MIN_FRAMES > 1


def test_stereo_is_read_from_its_first_channel_and_empty_is_nothing():
    left_loud = [v for i in range(1600) for v in (2000 if i % 2 else -2000, 0)]
    assert analyse(_wav(left_loud, channels=2)).voiced_frames == 10
    empty = analyse(_wav([]))
    assert (empty.duration_seconds, empty.peak, empty.voiced_frames) == (0.0, 0, 0)
