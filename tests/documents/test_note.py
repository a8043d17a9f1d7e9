"""The per-call note builder (pure): call dict + practice -> Note -> JSON."""

from __future__ import annotations

import json

from doc_helpers import ny, record

from ivr.documents.note import (
    NA_ABANDONED,
    NA_FALLBACK_MESSAGE,
    NA_IN_PROGRESS,
    NA_NOT_REACHED,
    NA_OPERATOR,
    NA_PENDING,
    OC_ACKNOWLEDGED,
    OC_CONNECTED,
    OC_FALLBACK_ANSWERED,
    OC_MESSAGE,
    build_note,
)

T = ny("2026-11-26 21:41")


def _legs():
    return [
        {"kind": "live", "clinician_id": "nurse-avery", "role": "nurse", "status": "no_answer",
         "ring_ms": 25000, "placed_at": ny("2026-11-26 21:43").isoformat()},
        {"kind": "live", "clinician_id": "dr-lindqvist", "role": "physician",
         "status": "accepted", "ring_ms": 8000, "bridge_seconds": 340.0,
         "placed_at": ny("2026-11-26 21:44").isoformat()},
    ]


def test_a_full_call_with_intake_recordings_and_attempts(sunny):
    call = record("c1", T, disposition="urgent", oncall_legs=_legs(),
                  oncall_outcome="connected", oncall_clinician="dr-lindqvist",
                  caller_told="We are connecting you with the clinician on call.")
    note = build_note(call, sunny)
    assert note.practice_name == "Sunny Pediatrics"
    assert note.local_start == "Thu Nov 26, 2026 9:41 PM EST"  # the practice's zone
    assert note.route_label == "After hours"
    assert (note.callback_number, note.callback_confirmed) == ("+16175550142", True)
    assert note.dob == "1990-01-02" and note.dob_confirmed
    assert [(r.field, r.duration_seconds) for r in note.recordings] == \
        [("name", 2.4), ("reason", 7.25)]
    assert note.recordings[1].path == "/data/recordings/c1/reason.wav"
    assert note.disposition == "urgent"
    assert [a.clinician for a in note.attempts] == [
        "Avery Brooks RN", "Dr. Sara Lindqvist (medical director)"]
    assert note.attempts[0].text == \
        "9:43 PM Live transfer to Avery Brooks RN (nurse): no answer after 25 s"
    assert "talked 5 min 40 s" in note.attempts[1].text
    assert note.outcome == OC_CONNECTED
    assert note.outcome_text == "Connected live to Dr. Sara Lindqvist (medical director)"
    assert note.caller_told.startswith("We are connecting")
    assert note.needs_action == ()
    rows = dict(note.rows())
    assert rows["Recording: reason"] == "7.2 s, /data/recordings/c1/reason.wav"
    assert rows["Attempt 2"].endswith("talked 5 min 40 s")
    doc = note.to_json()
    json.dumps(doc)  # plain JSON
    assert doc["started_local"] == "2026-11-26T21:41:00-05:00"
    assert doc["started_at"] == "2026-11-27T02:41:00+00:00"
    assert doc["attempts"][1]["clinician_id"] == "dr-lindqvist"
    assert doc["outcome"]["code"] == "connected"
    assert doc["recordings"][0] == {"field": "name", "path": "/data/recordings/c1/name.wav",
                                    "duration_seconds": 2.4, "size_bytes": 38444}


def test_attempts_and_outcome_absent_read_as_nothing_recorded(sunny):
    note = build_note(record("c2", T), sunny)
    assert note.attempts == () and note.outcome == OC_MESSAGE
    assert note.outcome_text == "Message taken for the office (call back when the office opens)"
    assert note.needs_action == ()
    assert "Attempt 1" not in dict(note.rows())


def test_a_bare_record_still_makes_a_note(sunny):
    note = build_note({"id": "c3", "started_at": T.isoformat()}, sunny)
    assert note.callback_number is None and note.dob is None and note.recordings == ()
    assert note.needs_action == (NA_IN_PROGRESS,)
    rows = dict(note.rows())
    assert rows["Callback number"] == "none given" and rows["Recordings"] == "none"
    assert rows["Duration"] == "in progress"


def test_the_newer_attempts_and_outcome_keys_are_read_first(sunny):
    cb = {"status": "acknowledged", "attempts": 2, "acknowledged_by": "nurse-blake",
          "acknowledged_at": ny("2026-11-26 21:53").isoformat(), "acknowledged_via": "callback"}
    call = record("c4", T, disposition="urgent", oncall_legs=[{"kind": "bogus"}],
                  attempts=[{"kind": "callback", "clinician_id": "nurse-blake",
                             "status": "accepted", "attempt_no": 2,
                             "placed_at": ny("2026-11-26 21:52").isoformat()}],
                  outcome="acknowledged", oncall_outcome="not_acknowledged",
                  callback=cb)
    note = build_note(call, sunny)
    assert [a.kind for a in note.attempts] == ["callback"]
    assert note.outcome == OC_ACKNOWLEDGED
    assert note.outcome_text == \
        "Acknowledged by Blake Chen RN 12 min 00 s after the call (via callback)"
    assert note.needs_action == ()


def test_not_acknowledged_and_pending_need_action(sunny):
    cb = {"status": "not_acknowledged", "attempts": 6}
    not_reached = build_note(record("c5", T, disposition="urgent",
                                    oncall_outcome="not_acknowledged", callback=cb), sunny)
    assert not_reached.needs_action == (NA_NOT_REACHED,)
    assert not_reached.outcome_text == \
        "Not reached: no clinician acknowledged after 6 call-back attempts"
    pending = build_note(record("c6", T, disposition="urgent",
                                oncall_outcome="callback_pending"), sunny)
    assert pending.needs_action == (NA_PENDING,)


def test_urgent_calls_reached_by_the_backup_path_or_not(sunny):
    answered = build_note(record("c7", T, disposition="urgent", result="fallback",
                                 end_reason="fallback_answered"), sunny)
    assert answered.outcome == OC_FALLBACK_ANSWERED and answered.needs_action == ()
    gone = build_note(record("c8", T, disposition="emergency", result="fallback",
                             end_reason="fallback_abandoned"), sunny)
    assert gone.needs_action == (NA_NOT_REACHED, NA_ABANDONED)
    recorded = build_note(record("c9", T, disposition=None, result="fallback",
                                 end_reason="fallback_recorded",
                                 fallback_recording="/spool/fallback/x.wav"), sunny)
    assert recorded.needs_action == (NA_FALLBACK_MESSAGE,)
    assert recorded.recordings[-1].field == "fallback message"


def test_every_abandoned_call_needs_action_with_or_without_a_number(sunny):
    with_number = build_note(record("c10", T, disposition=None, end_reason="caller_hangup",
                                    abandoned_step="intake.name"), sunny)
    assert with_number.needs_action == (NA_ABANDONED,)
    assert with_number.outcome_text == "Caller hung up during the name recording"
    assert "intake." not in " ".join(v for _, v in with_number.rows())  # no internal id
    without = record("c11", T, disposition=None, end_reason="caller_hangup",
                     abandoned_step="intake.callback")
    without["intake"] = {}
    # No number to call back is still a lead (the time, the recording): someone looks.
    assert build_note(without, sunny).needs_action == (NA_ABANDONED,)


def test_an_unknown_number_call_is_for_an_operator():
    call = record("c12", T, practice_id=None, route="unknown_number", disposition=None,
                  operator_flag=True)
    note = build_note(call, None)
    assert note.practice_name == "(no practice)" and note.tz.key == "UTC"
    assert note.route_label == "Unknown number (no practice)"
    assert note.needs_action == (NA_OPERATOR,)


def test_the_summary_line(sunny):
    note = build_note(record("c13", T, disposition="prescription", same_day_callback=True,
                             route="overflow"), sunny)
    assert note.summary == ("9:41 PM | Overflow (office open, call forwarded) | Prescription"
                            " | call back +16175550142 | Message taken for the office "
                            "(call back today)")
    assert note.brief()[0] == ("Callback number confirmed (caller ID); DOB 1990-01-02; "
                               "recordings: name 2.4 s, reason 7.2 s.")
