"""The reacting caller's pure parts: plans as JSON, and when a turn is over."""

from __future__ import annotations

import math
from array import array

import pytest

from ivr.caller.hearing import FRAME_MS, TONE_AFTER_MS, Hearing, WavTail
from ivr.caller.plan import (
    BUSY,
    AwaitEnd,
    CallPlan,
    Cue,
    Hangup,
    Listen,
    Pause,
    Phone,
    PhoneBook,
    Press,
    Say,
    SipAccount,
    step_from_json,
)

RATE = 8000


def tone(ms: int, amplitude: int = 3000, hz: float = 440) -> array:
    n = RATE * ms // 1000
    return array("h", (int(amplitude * math.sin(2 * math.pi * hz * i / RATE))
                       for i in range(n)))


def speechlike(ms: int) -> array:
    """Voice whose pitch moves every 60 ms, as a spoken prompt's does."""
    out = array("h")
    for n in range(ms // 60):
        out += tone(60, hz=(300, 700, 450, 900, 520)[n % 5])
    return out


def quiet(ms: int) -> array:
    return array("h", [0] * (RATE * ms // 1000))


def test_a_plan_survives_json():
    plan = CallPlan(caller_id="+16175550123", caller_name="A B",
                    steps=(Listen(quiet_ms=800), Listen(tone=True), Press("1#"), Say("/x.wav"),
                           Pause(200), Cue("/tmp/go", 30), Hangup(), AwaitEnd(5)),
                    headers=(("Diversion", "<sip:+16175550100@x>"),), codec="PCMA")
    assert CallPlan.from_json(plan.to_json()) == plan
    softphone = CallPlan(caller_id="testphone", account=SipAccount("testphone", "pw-1"))
    assert CallPlan.from_json(softphone.to_json()) == softphone
    book = PhoneBook({"16175550111": Phone(ring_ms=900)}, BUSY)
    assert PhoneBook.from_json(book.to_json()) == book


@pytest.mark.parametrize("keys", ["", "12a", "1 2", "+1"])
def test_only_phone_keys_can_be_pressed(keys):
    with pytest.raises(ValueError, match="not phone keys"):
        Press(keys)


def test_unknown_steps_and_numbers_are_refused():
    with pytest.raises(ValueError, match="unknown step 'dance'"):
        step_from_json({"do": "dance"})
    with pytest.raises(ValueError, match="digits only"):
        PhoneBook({"+1617": Phone()})


def test_a_turn_is_over_after_voice_then_quiet():
    hearing = Hearing(RATE)
    hearing.feed(quiet(3000))  # silence before anything is said is not a turn
    assert not hearing.turn_over(1000, 300)
    hearing.feed(tone(1200))
    hearing.feed(quiet(400))  # a pause inside a prompt
    hearing.feed(tone(600))
    hearing.feed(quiet(900))
    assert not hearing.turn_over(1000, 300)
    hearing.feed(quiet(100))
    assert hearing.turn_over(1000, 300)
    hearing.mark()  # we answered: the next turn needs new voice
    hearing.feed(quiet(2000))
    assert not hearing.turn_over(1000, 300)


def test_a_turn_ends_at_its_frame_even_when_read_late():
    """A late read that holds the end of one turn and the start of the next: two turns."""
    hearing = Hearing(RATE)
    hearing.listen(1000, 300)
    hearing.feed(tone(800) + quiet(1200) + tone(700))  # one read, as on a busy machine
    assert hearing.turn() == 800
    assert hearing.turn() is None  # taken once
    hearing.listen(1000, 300)  # the next turn counts from the end of the first
    hearing.feed(quiet(600))
    assert hearing.turn() is None
    hearing.feed(quiet(400))
    assert hearing.turn() == 700


def test_listening_again_needs_new_voice():
    hearing = Hearing(RATE)
    hearing.listen(1000, 300)
    hearing.feed(tone(500) + quiet(3000))
    assert hearing.turn() == 500
    hearing.listen(1000, 300)  # the quiet after a turn is no second turn
    hearing.feed(quiet(3000))
    assert hearing.turn() is None


def test_a_tone_ends_a_turn_that_waits_for_one():
    """The beep before a recording ends the turn (say the name now), not the quiet."""
    hearing = Hearing(RATE)
    hearing.listen(1000, 300, tone=True)
    hearing.feed(speechlike(2400) + quiet(1500))  # a pause before the beep: not it yet
    assert hearing.turn() is None
    hearing.feed(tone(420, hz=675) + quiet(TONE_AFTER_MS - FRAME_MS))
    assert hearing.turn() is None  # the beep may not be over yet
    hearing.feed(quiet(FRAME_MS))
    assert hearing.turn() == 2400 + 420


def test_a_steady_vowel_and_a_pause_are_no_beep():
    """A vowel held as long as a beep (a starved line's concealment stretches one), then
    a pause: still the question, not its beep (run h25: "After the tone," then a pause)."""
    hearing = Hearing(RATE)
    hearing.listen(1000, 300, tone=True)
    hearing.feed(speechlike(1200) + tone(500, hz=300) + quiet(1500))
    assert hearing.turn() is None
    hearing.feed(tone(420, hz=675) + quiet(TONE_AFTER_MS))  # the beep itself
    assert hearing.turn() == 1200 + 500 + 420


def test_a_beep_a_starved_pbx_sent_in_pieces_is_over_after_its_last_piece():
    """A 0.43 s beep heard as a second and a half: a long piece, a gap, short pieces
    (run h21). Speaking at the first piece's end was speaking before the recording."""
    hearing = Hearing(RATE)
    hearing.listen(1000, 300, tone=True)
    hearing.feed(speechlike(2400) + tone(520, hz=675) + quiet(380))
    assert hearing.turn() is None
    hearing.feed(tone(80, hz=675) + quiet(200) + tone(260, hz=675) + quiet(TONE_AFTER_MS))
    assert hearing.turn() == 2400 + 520 + 80 + 260


def test_a_tone_survives_a_lost_packet_but_speech_and_a_blip_are_no_tone():
    beep = tone(420, hz=675)
    lost = beep[:1600] + quiet(20) + beep[1760:]  # one frame missing in the middle
    for audio, heard in ((lost, True), (speechlike(3000), False), (tone(200, hz=675), False)):
        hearing = Hearing(RATE)
        hearing.listen(1000, 300, tone=True)
        hearing.feed(audio + quiet(TONE_AFTER_MS))
        assert (hearing.turn() is not None) == heard


def test_frames_split_across_reads_count_once():
    hearing = Hearing(RATE)
    audio = tone(1000)
    for start in range(0, len(audio), 37):  # reads that end inside frames
        hearing.feed(audio[start:start + 37])
    assert hearing.voiced_ms == 1000 - FRAME_MS or hearing.voiced_ms == 1000


def test_the_tail_reads_only_what_was_appended(tmp_path):
    path = tmp_path / "heard.wav"
    tail = WavTail(path)
    assert len(tail.read()) == 0  # not written yet
    path.write_bytes(b"\0" * 44 + array("h", [1, 2, 3]).tobytes() + b"\x07")
    assert list(tail.read()) == [1, 2, 3]
    with path.open("ab") as f:
        f.write(b"\x00" + array("h", [5]).tobytes())
    # The odd byte waits for its pair: samples are never split.
    assert list(tail.read()) == [7, 5]


def test_a_beep_garbled_by_lost_packets_still_ends_the_turn():
    """Two packets lost in a row inside the beep: still a tone. A beep lost past
    recognition: with tone_or_quiet_ms the quiet after it ends the turn, never a pause
    shorter than that before it."""
    beep = tone(420, hz=675)
    two_lost = beep[:1600] + quiet(40) + beep[1920:]
    hearing = Hearing(RATE)
    hearing.listen(1000, 300, tone=True)
    hearing.feed(two_lost + quiet(TONE_AFTER_MS))
    assert hearing.turn() is not None
    hearing = Hearing(RATE)
    hearing.listen(1000, 300, tone=True, tone_or_quiet_ms=2000)
    hearing.feed(speechlike(2400) + quiet(1500))  # the pause before the beep
    assert hearing.turn() is None
    hearing.feed(speechlike(300) + quiet(2000))  # the beep, unrecognisable, then silence
    assert hearing.turn() is not None


def test_a_gap_in_the_line_is_not_the_quiet_after_a_missed_beep():
    """A starved PBX sends nothing for seconds inside a question: the caller hears quiet,
    but the fallback (tone_or_quiet_ms) waits until the line has been steady that long."""
    hearing = Hearing(RATE)
    hearing.listen(1000, 300, tone=True, tone_or_quiet_ms=2000)
    hearing.line_steady(0)  # packets stopped
    hearing.feed(speechlike(2400) + quiet(2500))
    assert hearing.turn() is None
    hearing.line_steady(1000)  # they came back a second ago
    hearing.feed(quiet(200))
    assert hearing.turn() is None
    hearing.line_steady(2000)  # steady for the fallback's length: the quiet is silence
    hearing.feed(quiet(20))
    assert hearing.turn() is not None
