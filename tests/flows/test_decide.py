"""Routing and state decisions, intake checks and voice detection, without Asterisk."""

from __future__ import annotations

import wave
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from ivr.flows.audio import analyse
from ivr.flows.decide import decide
from ivr.flows.intake import parse_dob, spoken_number
from ivr.flows.speech import PromptLibrary
from ivr.rules import load_rules
from ivr.rules.model import Override

REPO = Path(__file__).resolve().parents[2]
# Monday 2026-11-23: 21:30 in Boston (Sunny closed), 14:00 in Denver (Mesa open).
EVENING_NY = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)
AFTERNOON_DENVER = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules():
    res = load_rules(REPO / "routing_rules", now=EVENING_NY)
    assert res.ok
    return res.rules


def test_closed_is_after_hours_with_the_next_opening(rules):
    d = decide(rules, "+16175550100", "", EVENING_NY)
    assert d.practice.id == "sunny-pediatrics" and d.route == "after_hours"
    assert d.reopens_at == datetime(2026, 11, 24, 13, 0, tzinfo=UTC)  # 8:00 AM Tuesday


def test_forwarded_while_open_is_overflow_and_direct_is_open_direct(rules):
    fwd = decide(rules, "+16175550999", "+17205550211", AFTERNOON_DENVER)
    assert fwd.practice.id == "mesa-family" and fwd.route == "overflow" and fwd.is_overflow
    assert fwd.closes_at == datetime(2026, 11, 24, 0, 30, tzinfo=UTC)  # 17:30 Denver
    direct = decide(rules, "+17205550200", "", AFTERNOON_DENVER)
    assert direct.route == "open_direct" and direct.is_overflow


def test_unknown_number(rules):
    d = decide(rules, "+15555550123", "", EVENING_NY)
    assert d.practice is None and d.route == "unknown_number"
    assert decide(None, "+16175550100", "", EVENING_NY).route == "unknown_number"


def test_manual_override_wins(rules):
    closed = Override(AFTERNOON_DENVER - timedelta(hours=1),
                      AFTERNOON_DENVER + timedelta(hours=1), False, "meeting", True)
    d = decide(rules, "+17205550200", "", AFTERNOON_DENVER, (closed,))
    assert d.route == "after_hours" and d.state.kind == "override"
    assert d.reopens_at == AFTERNOON_DENVER + timedelta(hours=1)


def test_naive_instant_refused(rules):
    with pytest.raises(ValueError):
        decide(rules, "+16175550100", "", datetime(2026, 11, 23, 12))


@pytest.mark.parametrize("digits,ok", [
    ("01021990", date(1990, 1, 2)), ("02292024", date(2024, 2, 29)), ("02292023", None),
    ("13011990", None), ("0102199", None), ("01021899", None), ("12312026", None),
    ("11202026", date(2026, 11, 20)), ("abcdefgh", None)])
def test_parse_dob(digits, ok):
    assert parse_dob(digits, date(2026, 11, 23)) == ok


def test_spoken_number_is_the_national_form():
    assert spoken_number("+16175550142") == "6175550142"


def _wav(path: Path, samples: list[int]) -> Path:
    import struct

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


def test_voice_detection(tmp_path):
    import math

    silent = analyse(_wav(tmp_path / "s.wav", [0, 3, -2, 1] * 8000))
    assert not silent.has_voice and silent.duration_seconds == 4.0
    tone = [int(4000 * math.sin(i / 5)) for i in range(4000)]
    voiced = analyse(_wav(tmp_path / "v.wav", [0] * 16000 + tone + [0] * 16000))
    assert voiced.has_voice and voiced.peak > 3000


def test_per_call_placeholders_are_split_out(rules):
    lib = PromptLibrary(Path("/nonexistent"), str, Path("/nonexistent"))
    sunny = rules.practices["sunny-pediatrics"]
    pieces = lib._pieces(sunny, "callback_promise")
    assert ("slot", "callback_time") in pieces
    assert all("{" not in p for kind, p in pieces if kind == "text")
    assert lib._pieces(sunny, "emergency_notice")[0][0] == "text"
    texts = lib.texts_for(sunny)
    assert any("Sunny Pediatrics" in t for t in texts)  # {practice} rendered ahead


def test_closed_until_further_notice_promises_a_call_back_when_the_office_reopens(
        rules, tmp_path):
    """No reopening known: the caller hears and the record says "after the office
    reopens", never "after ." with a gap or a raw {callback_time}."""
    from types import SimpleNamespace

    from ivr.flows.session import Session
    from ivr.flows.triage import told_text

    closed = Override(AFTERNOON_DENVER - timedelta(hours=1), None, False, "flood", True)
    d = decide(rules, "+17205550200", "", AFTERNOON_DENVER, (closed,))
    assert d.route == "after_hours" and d.reopens_at is None
    lib = PromptLibrary(tmp_path / "sounds", str, tmp_path / "cache")
    s = Session(channel=None, call_id="c1", services=SimpleNamespace(speech=lib),  # type: ignore[arg-type]
                decision=d, instant=AFTERNOON_DENVER, regions=("US",), caller_e164=None)
    told = told_text(s, "callback_promise")
    assert "after the office reopens." in told and "{" not in told
    assert s.slots()["callback_time"] == [s.flow("reopening_unknown")]
