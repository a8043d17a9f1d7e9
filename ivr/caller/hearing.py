"""What the caller hears, frame by frame: has the service spoken, and is it quiet now?"""

from __future__ import annotations

import math
from array import array
from pathlib import Path

FRAME_MS = 20
# 16-bit scale. The PBX sends digital silence between prompts (transmit_silence) and
# recorded prompts speak well above this; the quiet inside a prompt stays under it only
# for the short pauses between words and sentences (at most ~0.5 s in our prompts).
VOICE_RMS = 120.0
# A beep (the tone before a recording) is a steady tone: frame after frame the same zero
# crossings (+-1), two odd frames in a row forgiven (late or lost packets). Speech is never that
# steady this long: our TTS prompts stay so for 11 frames at most, Asterisk's beep for
# some 20.
TONE_FRAMES = 15
TONE_MISSED = 2  # odd frames in a row forgiven: a loaded PBX loses packets in pairs
#: Zero crossings per frame of Asterisk's beep (a 675 Hz tone: 27 per 20 ms), with room
#: for the line's coding. A steady vowel is no beep: "After the tone," with a starved
#: line's packet-loss concealment stretching its vowel, then a pause, was taken for the
#: beep, and the caller spoke over the rest of the question.
TONE_CROSSINGS = range(24, 31)
# A beep is over once this much quiet follows it: a starved PBX sends its 0.43 s in
# pieces over a second or more (gaps of 0.4-0.9 s seen), and the recording starts only
# after the last piece, so a caller who spoke at the first piece's end was not recorded.
# A person, too, speaks once the beep stopped.
TONE_AFTER_MS = 1000
WAV_HEADER = 44  # the canonical PCM header pjmedia's WAV writer puts first


class Hearing:
    """Counts voiced audio since the last mark, and quiet at the end of what was heard.

    While listening (`listen`), the frame that ends a turn ends it, however much audio
    one read brings: a turn over and the service already speaking again in the same read
    (a busy machine reads late and in large pieces) are two turns, not one.
    """

    def __init__(self, rate: int) -> None:
        self.frame = rate * FRAME_MS // 1000
        self.voiced_ms = 0
        self.quiet_ms = 0
        self.heard_ms = 0
        self._rest = array("h")
        self._listening: tuple[int, int, bool] | None = None
        self._turn: int | None = None  # voiced ms of the turn that ended while listening
        self._fallback_ms = 0  # a tone turn also ends after this much quiet (0: never)
        self._steady = (0, 0, 0)  # steady frames so far, their crossings, odd frames in a row
        self._tone_heard = False  # a tone since listen(); the turn ends in the quiet after
        #: How long the line has carried packets with no gap (ms; inf: not measured).
        self._line_ms = math.inf

    def line_steady(self, ms: float) -> None:
        """For how long packets have reached us with no gap. A starved PBX sends nothing
        for seconds, which a caller hears as quiet; that quiet is not the recording's
        silence, so the missed-beep fallback waits for this much steady line too.
        (Run h30: a 2 s gap inside the reason's question was taken for the quiet after a
        missed beep, the caller spoke before the recording, both tries came back silent.)"""
        self._line_ms = ms

    def mark(self) -> None:
        """We acted (pressed, spoke): what the service says next counts from here."""
        self.voiced_ms = 0
        self.quiet_ms = 0

    def feed(self, samples: array[int]) -> None:
        buf = self._rest + samples
        whole = len(buf) // self.frame * self.frame
        for start in range(0, whole, self.frame):
            chunk = buf[start:start + self.frame]
            rms = math.sqrt(sum(x * x for x in chunk) / self.frame)
            # Only a voiced frame's zero crossings matter (see _tone_ended).
            crossings = sum(1 for a, b in zip(chunk, chunk[1:], strict=False)
                            if (a < 0) != (b < 0)) if rms >= VOICE_RMS else 0
            self.heard_frame(rms, crossings)
        self._rest = buf[whole:]

    def heard_frame(self, rms: float, crossings: int) -> None:
        """One 20 ms frame, by its RMS (16-bit scale) and its zero crossings (any value
        for a frame under VOICE_RMS): for a caller that measures frames its own way."""
        self.heard_ms += FRAME_MS
        if rms >= VOICE_RMS:
            self.voiced_ms += FRAME_MS
            self.quiet_ms = 0
        else:
            self.quiet_ms += FRAME_MS
        if self._tone_ended(rms, crossings):
            self._tone_heard = True
        self._check()

    def _tone_ended(self, rms: float, crossings: int) -> bool:
        """Follow the steady run; True at the frame that ends one long enough for a tone."""
        frames, base, missed = self._steady
        if frames and rms >= VOICE_RMS and abs(crossings - base) <= 1:
            self._steady = (frames + 1, base, 0)
            return False
        if frames and missed < TONE_MISSED:
            self._steady = (frames, base, missed + 1)
            return False
        voiced = rms >= VOICE_RMS and crossings in TONE_CROSSINGS
        self._steady = (1, crossings, 0) if voiced else (0, 0, 0)
        return frames >= TONE_FRAMES

    def turn_over(self, quiet_ms: int, min_voice_ms: int) -> bool:
        """The service has said something since the mark, then stopped for `quiet_ms`."""
        return self.voiced_ms >= min_voice_ms and self.quiet_ms >= quiet_ms

    def listen(self, quiet_ms: int, min_voice_ms: int, tone: bool = False,
               tone_or_quiet_ms: int = 0) -> None:
        """Wait for the end of a turn (see `turn`); what follows it counts from a mark.

        `tone`: the turn ends with a tone (a beep), not with quiet; or, with
        `tone_or_quiet_ms`, with that much quiet after voice (a beep garbled past
        recognition by a starved line is still followed by the recording's silence)."""
        self._listening, self._turn = (quiet_ms, min_voice_ms, tone), None
        self._fallback_ms = tone_or_quiet_ms
        self._tone_heard = False
        self._check()

    def turn(self) -> int | None:
        """Once, after the turn listened for is over: the voice it held (ms)."""
        turn, self._turn = self._turn, None
        return turn

    def _check(self) -> None:
        if self._listening is None:
            return
        quiet_ms, min_voice_ms, tone = self._listening
        fallback = tone and self._fallback_ms > 0 and self._line_ms >= self._fallback_ms \
            and self.turn_over(self._fallback_ms, min_voice_ms)
        beep_over = self._tone_heard and self.turn_over(TONE_AFTER_MS, min_voice_ms)
        if fallback or (beep_over if tone else self.turn_over(quiet_ms, min_voice_ms)):
            self._turn, self._listening = self.voiced_ms, None
            self.mark()


class WavTail:
    """Reads the samples a WAV writer appends to its file, as they reach the disk.

    pjmedia's recorder flushes every few hundred milliseconds; reading the growing file
    is simpler and sturdier than a media port calling into Python from the media thread.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = WAV_HEADER

    def read(self) -> array[int]:
        samples = array("h")
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return samples
        data = data[: len(data) // 2 * 2]
        self.offset += len(data)
        samples.frombytes(data)
        return samples
