"""The caller's words in the documents: the note shows the name and reason transcripts
beside the recordings, marked as a machine's; the morning report lists a red-flag call
that stayed a message first; the JSON (and so the webhook) carries them, marked."""

from __future__ import annotations

from datetime import date

from doc_helpers import ny, record
from test_pdf import _text

from ivr.documents.note import NA_RED_FLAG, build_note
from ivr.documents.pdf import note_pdf, report_pdf
from ivr.documents.report import build_report, night_window
from ivr.texts import en

MADE = ny("2026-11-27 08:00")
FEVER = "My daughter has a fever of 103 since this afternoon."


def _transcripts(reason: str, name: str = "Alex Smith", status: str = "done") -> list[dict]:
    return [{"field": "reason", "status": status, "text": reason, "note": None},
            {"field": "name", "status": "done", "text": name, "note": None}]


def test_the_note_shows_name_and_reason_in_words_next_to_the_recording(sunny):
    note = build_note(record("c1", ny("2026-11-26 21:41"), transcripts=_transcripts(FEVER)),
                      sunny)
    rows = note.rows()
    labels = [label for label, _ in rows]
    assert labels.index("Name (automatic transcript)") < labels.index("Recording: name")
    assert dict(rows)["Reason (automatic transcript)"] == f'"{FEVER}"'
    assert dict(rows)["Transcripts"] == en.TRANSCRIPT_MARK
    text = _text(note_pdf(note, MADE))
    assert "fever" in text and "103" in text and "Alex Smith" in text
    assert en.TRANSCRIPT_MARK in text and "/data/recordings/c1/reason.wav" in text
    data = note.to_json()
    assert [t["field"] for t in data["transcripts"]] == ["name", "reason"]
    assert {t["mark"] for t in data["transcripts"]} == {en.TRANSCRIPT_MARK}


def test_a_failed_or_skipped_transcript_says_why(sunny):
    rows = dict(build_note(record("c2", ny("2026-11-26 22:00"), transcripts=[
        {"field": "reason", "status": "skipped", "text": "",
         "note": "no whisper model for es-US is installed"}], language="es-US"),
        sunny).rows())
    assert rows["Reason (automatic transcript)"] == \
        "(no transcript: no whisper model for es-US is installed)"
    assert rows["Caller's language"] == "Spanish"


def test_red_flag_message_needs_action_first_in_the_report(sunny):
    calm = record("a", ny("2026-11-26 20:00"), transcripts=_transcripts("a refill please"))
    flagged = record("b", ny("2026-11-26 23:00"), red_flag="breathing",
                     transcripts=_transcripts("he is not breathing right"))
    upgraded = record("c", ny("2026-11-26 23:30"), red_flag="chest_pain",
                      disposition="urgent", oncall_outcome="connected",
                      oncall_legs=[{"kind": "live", "clinician_id": "nurse-avery",
                                    "status": "accepted", "ring_ms": 5000}])
    pending = record("d", ny("2026-11-26 21:00"), disposition="urgent",
                     oncall_outcome="not_acknowledged")
    window = night_window(sunny, date(2026, 11, 26))
    report = build_report(sunny, window, [calm, flagged, upgraded, pending], MADE)
    assert [n.call_id for n in report.needs_action][:2] == ["b", "d"]
    assert report.needs_action[0].needs_action[0] == NA_RED_FLAG
    assert "c" not in [n.call_id for n in report.needs_action]  # reached the on-call
    text = _text(report_pdf(report))
    assert text.index("Red flag in the reason") < text.index("Not reached")
    assert "Red flag: breathing trouble." in text and "not breathing right" in text
    by_id = {c["call_id"]: c for c in report.to_json()["calls"]}
    assert by_id["b"]["red_flag"] == {"topic": "breathing", "text": "breathing trouble"}
    assert by_id["a"]["red_flag"] is None
