"""Per-call note: a call record (ivr.records.calls.show_call) + its practice -> Note -> JSON.

Pure: no database, no files, no clock. The call dict is read defensively (`.get` with
defaults) because the record grows (dial attempts, call-backs, outcome); a key that is not
there yet reads as "nothing recorded".

Recordings are referenced (path, duration, size), never attached: notifications carry the
minimum necessary and the audio sits behind login (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from ivr.db.kinds import EndReason, LegKind, LegStatus, Source
from ivr.documents.words import (
    Words,
    brief_words,
    language_label,
    red_flag_label,
    word_rows,
    words_of,
)
from ivr.rules.decision import Route
from ivr.rules.model import MESSAGE_DISPOSITIONS, Disposition, Practice

NOTE_VERSION = 1

ROUTE_LABELS: dict[str, str] = {
    Route.AFTER_HOURS: "After hours",
    Route.OVERFLOW: "Overflow (office open, call forwarded)",
    Route.OPEN_DIRECT: "Office open (dialled directly)",
    Route.UNKNOWN: "Unknown number (no practice)",
    Route.CLINICIAN_LINE: "Clinician line (a clinician reviewing messages)",
}
LIVE_DISPOSITIONS = (Disposition.EMERGENCY, Disposition.URGENT)

# Outcome codes (one per call, for the report's counts).
OC_CONNECTED = "connected"
OC_ACKNOWLEDGED = "acknowledged"
OC_NOT_ACKNOWLEDGED = "not_acknowledged"
OC_PENDING = "callback_pending"
OC_FALLBACK_ANSWERED = "fallback_answered"
OC_FALLBACK_MESSAGE = "fallback_message"
OC_FALLBACK_ABANDONED = "fallback_abandoned"
OC_ABANDONED = "abandoned"
OC_MESSAGE = "message_taken"
OC_OPERATOR = "operator"
OC_IN_PROGRESS = "in_progress"
OC_OTHER = "other"
REACHED = (OC_CONNECTED, OC_ACKNOWLEDGED, OC_FALLBACK_ANSWERED)

# Why a call still needs someone to act, most pressing first (the report's order).
NA_RED_FLAG = "red_flag"
NA_NOT_REACHED = "not_reached"
NA_PENDING = "callback_pending"
NA_FALLBACK_MESSAGE = "fallback_message"
NA_ABANDONED = "abandoned_with_callback"
NA_OPERATOR = "operator"
NA_IN_PROGRESS = "in_progress"
NEEDS_ACTION_ORDER = (NA_RED_FLAG, NA_NOT_REACHED, NA_PENDING, NA_FALLBACK_MESSAGE, NA_ABANDONED,
                      NA_OPERATOR, NA_IN_PROGRESS)
NEEDS_ACTION_TEXT = {
    NA_RED_FLAG: "Red flag in the reason (automatic transcript): the caller left a message "
                 "instead of reaching the on-call; listen to the recording and call back",
    NA_NOT_REACHED: "Not reached: no clinician took or acknowledged this call",
    NA_PENDING: "Call-back still pending: not yet acknowledged by a clinician",
    NA_FALLBACK_MESSAGE: "Message recorded by the backup path: listen to the recording",
    NA_ABANDONED: "Caller hung up before the end: call back",
    NA_OPERATOR: "Flagged for an operator: route this call to the right practice",
    NA_IN_PROGRESS: "Call still in progress (or not yet closed) when this was made",
}

LEG_KINDS: dict[str, str] = {LegKind.LIVE: "Live transfer", LegKind.CALLBACK: "Call-back",
             LegKind.PATIENT: "Patient call"}
LEG_STATUS: dict[str, str] = {
    LegStatus.PLACING: "being placed", LegStatus.ANSWERED: "answered (screening)",
    LegStatus.ACCEPTED: "accepted", LegStatus.DECLINED: "declined",
    LegStatus.NO_ANSWER: "no answer", LegStatus.BUSY: "busy", LegStatus.FAILED: "failed",
    LegStatus.SCREEN_TIMEOUT: "answered, no key (voicemail?)",
    LegStatus.CALLER_GONE: "caller had hung up", LegStatus.UNKNOWN: "outcome unknown",
    LegStatus.COMPLETED: "completed", LegStatus.TAKEN_BY_OTHER: "taken by another clinician",
}
#: Where in the call a caller hung up, as the front desk reads it (the flow's step ids).
STEP_WORDS: dict[str, str] = {
    "start": "the first moment", "language": "the language choice",
    "greeting": "the greeting", "emergency_notice": "the emergency notice",
    "intake.callback": "the call-back number question",
    "intake.dob": "the date of birth question", "intake.name": "the name recording",
    "intake.reason": "the reason recording", "triage": "the menu",
    "redflag_offer": "the offer to reach the on-call for an urgent symptom",
    "oncall.search": "the wait for the on-call clinician",
    "oncall.exhausted": "the message after no clinician answered",
    "operator_closing": "the closing words", "clinician_pin": "the clinician PIN prompt",
}


def step_words(step: str) -> str:
    """'intake.dob' -> 'the date of birth question'; an action step names the choice."""
    if step.startswith("action."):
        return f"what followed the {step.split('.', 1)[1]} choice"
    return STEP_WORDS.get(step, step.replace(".", " ").replace("_", " "))


END_LABELS: dict[str, str] = {
    EndReason.COMPLETED: "completed", EndReason.CALLER_HANGUP: "caller hung up",
    EndReason.FALLBACK_ANSWERED: "answered by the backup on-call number",
    EndReason.FALLBACK_RECORDED: "message recorded by the backup path",
    EndReason.FALLBACK_ABANDONED: "caller hung up in the backup path",
    EndReason.PBX_RESTART: "cut by a restart of the phone system",
    EndReason.PBX_FAILURE: "cut by a failure of the phone system",
}


@dataclass(frozen=True)
class RecordingRef:
    field: str  # name | reason | fallback
    path: str
    duration_seconds: float | None
    size_bytes: int | None

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "path": self.path,
                "duration_seconds": self.duration_seconds, "size_bytes": self.size_bytes}


@dataclass(frozen=True)
class Attempt:
    """One clinician (or patient call-back) leg."""

    at: datetime | None
    kind: str
    clinician_id: str | None
    clinician: str  # display name (the id when the rules do not name them)
    role: str | None
    status: str
    ring_seconds: float | None
    detail: str | None
    text: str

    def to_json(self, tz: ZoneInfo) -> dict[str, Any]:
        return {"at": _iso(self.at), "at_local": _iso_local(self.at, tz), "kind": self.kind,
                "clinician_id": self.clinician_id, "clinician": self.clinician,
                "role": self.role, "status": self.status, "ring_seconds": self.ring_seconds,
                "detail": self.detail, "text": self.text}


@dataclass(frozen=True)
class Note:
    call_id: str
    practice_id: str | None
    practice_name: str
    tz: ZoneInfo
    started_at: datetime
    ended_at: datetime | None
    route: str | None
    route_label: str
    state_reason: str | None
    callback_number: str | None
    callback_confirmed: bool
    callback_source: str | None
    dob: str | None
    dob_confirmed: bool
    recordings: tuple[RecordingRef, ...]
    disposition: str | None
    attempts: tuple[Attempt, ...]
    outcome: str
    outcome_text: str
    caller_told: str | None
    end_reason: str | None
    abandoned_step: str | None
    needs_action: tuple[str, ...] = field(default_factory=tuple)
    recordings_purged_at: datetime | None = None  # deleted under the practice's retention
    words: tuple[Words, ...] = ()  # machine transcripts of the name and reason
    red_flag: str | None = None  # the topic a transcript matched (ivr.transcribe.redflags)
    language: str | None = None  # the caller's language tag

    @property
    def local_start(self) -> str:
        return fmt_human(self.started_at, self.tz)

    @property
    def duration_seconds(self) -> float | None:
        if self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - self.started_at).total_seconds())

    @property
    def needs_action_rank(self) -> int:
        ranks = [NEEDS_ACTION_ORDER.index(k) for k in self.needs_action]
        return min(ranks) if ranks else len(NEEDS_ACTION_ORDER)

    @property
    def summary(self) -> str:
        """One line for the report: time, route, disposition, callback, outcome."""
        local = self.started_at.astimezone(self.tz)
        parts = [local.strftime("%I:%M %p").lstrip("0"), self.route_label,
                 (self.disposition or "no triage").capitalize(),
                 f"call back {self.callback_number}" if self.callback_number
                 else "no callback number", self.outcome_text]
        return " | ".join(parts)

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) lines for the PDF and the terminal."""
        cb = self.callback_number or "none given"
        if self.callback_number:
            cb += " (confirmed" if self.callback_confirmed else " (NOT confirmed"
            cb += f", {_source_label(self.callback_source)})"
        dob = self.dob or "not given"
        if self.dob and not self.dob_confirmed:
            dob += " (not confirmed)"
        duration = self.duration_seconds
        out = [
            ("Practice", self.practice_name),
            ("Call time", self.local_start),
            ("Duration", _fmt_duration(duration) if duration is not None else "in progress"),
            ("Route", self.route_label + (f" ({self.state_reason})" if self.state_reason
                                          else "")),
            ("Callback number", cb),
            ("Date of birth", dob),
        ]
        out.extend(word_rows(self.words, self.red_flag, self.language))
        for rec in self.recordings:
            length = f"{rec.duration_seconds:.1f} s" if rec.duration_seconds is not None \
                else "length unknown"
            out.append((f"Recording: {rec.field}", f"{length}, {rec.path}"))
        if not self.recordings:
            out.append(("Recordings", "deleted under the practice's retention policy"
                        if self.recordings_purged_at else "none"))
        out.append(("Triage", self.disposition or "not reached (no menu choice)"))
        for i, attempt in enumerate(self.attempts, 1):
            out.append((f"Attempt {i}", attempt.text))
        out.append(("Outcome", self.outcome_text))
        out.append(("Caller was told", self.caller_told or "(nothing recorded)"))
        end = END_LABELS.get(self.end_reason or "", self.end_reason or "not recorded")
        if self.abandoned_step:
            end += f" during {step_words(self.abandoned_step)}"
        out.append(("Call ended", end))
        for kind in self.needs_action:
            out.append(("NEEDS ACTION", NEEDS_ACTION_TEXT[kind]))
        out.append(("Call id", self.call_id))
        return out

    def brief(self) -> list[str]:
        """The note in a few lines, for the morning report (after `summary`)."""
        facts = []
        if self.callback_number:
            facts.append("callback number " + ("confirmed" if self.callback_confirmed
                                               else "NOT confirmed")
                         + f" ({_source_label(self.callback_source)})")
        facts.append(f"DOB {self.dob}" + ("" if self.dob_confirmed or not self.dob
                                          else " (not confirmed)") if self.dob
                     else "no date of birth")
        if self.recordings:
            facts.append("recordings: " + ", ".join(
                f"{r.field} {r.duration_seconds:.1f} s" if r.duration_seconds is not None
                else r.field for r in self.recordings))
        text = "; ".join(facts)
        out = [text[:1].upper() + text[1:] + "."]
        said = brief_words(self.words)
        if said:
            out.append(said)
        if self.red_flag:
            out.append(f"Red flag: {red_flag_label(self.red_flag)}.")
        if language_label(self.language):
            out.append(f"The caller speaks {language_label(self.language)}.")
        if self.attempts:
            out.append("Attempts: " + "; ".join(a.text for a in self.attempts) + ".")
        if self.caller_told:
            out.append(f"Told: {self.caller_told}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "call_note", "version": NOTE_VERSION, "call_id": self.call_id,
            "practice": {"id": self.practice_id, "name": self.practice_name,
                         "timezone": self.tz.key},
            "started_at": _iso(self.started_at),
            "started_local": _iso_local(self.started_at, self.tz),
            "ended_at": _iso(self.ended_at), "duration_seconds": self.duration_seconds,
            "route": self.route, "route_label": self.route_label,
            "state_reason": self.state_reason,
            "callback": {"number": self.callback_number, "confirmed": self.callback_confirmed,
                         "source": self.callback_source},
            "dob": {"value": self.dob, "confirmed": self.dob_confirmed},
            "recordings": [r.to_json() for r in self.recordings],
            "recordings_purged_at": _iso(self.recordings_purged_at),
            "disposition": self.disposition,
            "attempts": [a.to_json(self.tz) for a in self.attempts],
            "outcome": {"code": self.outcome, "text": self.outcome_text},
            "caller_told": self.caller_told, "end_reason": self.end_reason,
            "abandoned_step": self.abandoned_step,
            "needs_action": [{"kind": k, "text": NEEDS_ACTION_TEXT[k]}
                             for k in self.needs_action],
            "summary": self.summary,
            "transcripts": [w.to_json() for w in self.words],
            "red_flag": {"topic": self.red_flag, "text": red_flag_label(self.red_flag)}
            if self.red_flag else None,
            "language": self.language,
        }


# --- building ----------------------------------------------------------------------------

def build_note(call: Mapping[str, Any], practice: Practice | None) -> Note:
    """The note of one call. `practice` None: a call to a number no practice claims."""
    tz = practice.tz if practice is not None else ZoneInfo("UTC")
    started = _time(call.get("started_at")) or datetime.fromtimestamp(0, UTC)
    ended = _time(call.get("ended_at"))
    intake: Mapping[str, Any] = call.get("intake") or {}
    callback = intake.get("callback") or {}
    dob = intake.get("dob") or {}
    attempts = tuple(_attempt(leg, practice) for leg in _legs(call))
    outcome, outcome_text = _outcome(call, practice, started)
    route = call.get("route")
    note = Note(
        call_id=str(call.get("id", "")),
        practice_id=practice.id if practice is not None else call.get("practice_id"),
        practice_name=practice.name if practice is not None else "(no practice)",
        tz=tz, started_at=started, ended_at=ended, route=route,
        route_label=ROUTE_LABELS.get(route or "", route or "not decided"),
        state_reason=call.get("state_reason"),
        callback_number=callback.get("value") or None,
        callback_confirmed=bool(callback.get("confirmed")),
        callback_source=callback.get("source"),
        dob=dob.get("value") or None, dob_confirmed=bool(dob.get("confirmed")),
        recordings=_recordings(call), disposition=call.get("disposition"),
        attempts=attempts, outcome=outcome, outcome_text=outcome_text,
        caller_told=call.get("caller_told"), end_reason=call.get("end_reason"),
        abandoned_step=call.get("abandoned_step"),
        recordings_purged_at=_time(call.get("recordings_purged_at")),
        words=words_of(call), red_flag=call.get("red_flag") or None,
        language=call.get("language"))
    return _with_needs_action(note, call)


def _legs(call: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    legs = call.get("attempts")
    if legs is None:
        legs = call.get("oncall_legs")
    legs = [leg for leg in (legs or []) if isinstance(leg, Mapping)]
    return sorted(legs, key=lambda leg: str(leg.get("placed_at") or leg.get("at") or ""))


def _clinician_name(practice: Practice | None, clinician_id: str | None) -> str:
    if not clinician_id:
        return "unknown clinician"
    if practice is not None:
        person = practice.on_call.clinicians.get(clinician_id)
        if person is not None:
            return person.name
    return clinician_id


def _attempt(leg: Mapping[str, Any], practice: Practice | None) -> Attempt:
    at = _time(leg.get("placed_at") or leg.get("at"))
    kind = str(leg.get("kind") or "live")
    clinician_id = leg.get("clinician_id")
    name = _clinician_name(practice, clinician_id) if kind != "patient" else "the patient"
    status = str(leg.get("status") or "unknown")
    ring_ms = leg.get("ring_ms")
    ring = round(ring_ms / 1000, 1) if isinstance(ring_ms, (int, float)) else None
    text = f"{LEG_KINDS.get(kind, kind)} to {name}"
    if leg.get("role") and kind != "patient":
        text += f" ({leg['role']})"
    if at is not None and practice is not None:
        text = f"{at.astimezone(practice.tz).strftime('%I:%M %p').lstrip('0')} " + text
    text += f": {LEG_STATUS.get(status, status)}"
    if ring is not None:
        text += f" after {ring:g} s"
    if leg.get("bridge_seconds"):
        text += f", talked {_fmt_duration(float(leg['bridge_seconds']))}"
    return Attempt(at=at, kind=kind, clinician_id=clinician_id, clinician=name,
                   role=leg.get("role"), status=status, ring_seconds=ring,
                   detail=leg.get("detail"), text=text)


def _outcome(call: Mapping[str, Any], practice: Practice | None,
             started: datetime) -> tuple[str, str]:
    raw = call.get("outcome")
    if raw is None:
        raw = call.get("oncall_outcome")
    clinician_id = call.get("oncall_clinician")
    if isinstance(raw, Mapping):  # a richer outcome object, should the record grow one
        clinician_id = raw.get("clinician_id") or raw.get("clinician") or clinician_id
        raw = raw.get("code") or raw.get("kind") or raw.get("status")
    cb = call.get("callback") if isinstance(call.get("callback"), Mapping) else None
    who = _clinician_name(practice, clinician_id or (cb or {}).get("acknowledged_by"))
    if raw == OC_CONNECTED:
        return OC_CONNECTED, f"Connected live to {who}"
    if raw == OC_ACKNOWLEDGED:
        text = f"Acknowledged by {who}"
        acked = _time((cb or {}).get("acknowledged_at"))
        if acked is not None:
            text += f" {_fmt_duration((acked - started).total_seconds())} after the call"
        via = (cb or {}).get("acknowledged_via")
        if via:
            text += f" (via {via})"
        return OC_ACKNOWLEDGED, text
    if raw == OC_NOT_ACKNOWLEDGED:
        tries = (cb or {}).get("attempts")
        return OC_NOT_ACKNOWLEDGED, "Not reached: no clinician acknowledged" + (
            f" after {tries} call-back attempts" if tries else "")
    if raw == OC_PENDING:
        return OC_PENDING, "Call-back pending: not yet acknowledged"
    end = call.get("end_reason")
    if end == "fallback_answered":
        return OC_FALLBACK_ANSWERED, "Answered by the backup on-call number"
    if end == "fallback_recorded":
        return OC_FALLBACK_MESSAGE, "Message recorded by the backup path"
    if end == "fallback_abandoned":
        return OC_FALLBACK_ABANDONED, "Caller hung up before anyone answered"
    if call.get("abandoned_step") or end == "caller_hangup":
        step = call.get("abandoned_step")
        return OC_ABANDONED, "Caller hung up" + (f" during {step_words(step)}" if step else "")
    if call.get("operator_flag"):
        return OC_OPERATOR, "Intake taken for an operator"
    if call.get("ended_at") is None and call.get("reconciled_at") is None \
            and call.get("result") is None:
        return OC_IN_PROGRESS, "In progress"
    if call.get("disposition") in MESSAGE_DISPOSITIONS:
        when = "today" if call.get("same_day_callback") else "when the office opens"
        return OC_MESSAGE, f"Message taken for the office (call back {when})"
    return OC_OTHER, "No clinician contact recorded"


def _with_needs_action(note: Note, call: Mapping[str, Any]) -> Note:
    kinds: list[str] = []
    oc = note.outcome
    if oc == OC_NOT_ACKNOWLEDGED or (note.disposition in LIVE_DISPOSITIONS
                                     and oc not in (*REACHED, OC_PENDING)):
        kinds.append(NA_NOT_REACHED)
    if oc == OC_PENDING:
        kinds.append(NA_PENDING)
    if oc == OC_FALLBACK_MESSAGE or call.get("fallback_recording"):
        kinds.append(NA_FALLBACK_MESSAGE)
    if oc in (OC_ABANDONED, OC_FALLBACK_ABANDONED):  # with a number or without: a lead
        kinds.append(NA_ABANDONED)
    if call.get("operator_flag"):
        kinds.append(NA_OPERATOR)
    if note.red_flag and note.disposition not in LIVE_DISPOSITIONS:
        kinds.append(NA_RED_FLAG)  # may be urgent, and nobody has heard it yet
    if oc == OC_IN_PROGRESS:
        kinds.append(NA_IN_PROGRESS)
    ordered = tuple(k for k in NEEDS_ACTION_ORDER if k in kinds)
    return Note(**{**note.__dict__, "needs_action": ordered})


def _recordings(call: Mapping[str, Any]) -> tuple[RecordingRef, ...]:
    intake: Mapping[str, Any] = call.get("intake") or {}
    by_path = {r.get("path"): r for r in call.get("recordings") or [] if isinstance(r, Mapping)}
    out: list[RecordingRef] = []
    seen: set[str] = set()
    for name in ("name", "reason"):
        entry = intake.get(name) or {}
        path = entry.get("recording_path")
        if not path:
            continue
        rec = by_path.get(path, {})
        out.append(RecordingRef(name, path, entry.get("duration_seconds")
                                or rec.get("duration_seconds"), rec.get("size_bytes")))
        seen.add(path)
    for path, rec in by_path.items():  # any other recording kept for the call
        if path and path not in seen:
            out.append(RecordingRef(str(rec.get("field") or "other"), path,
                                    rec.get("duration_seconds"), rec.get("size_bytes")))
            seen.add(path)
    fallback = call.get("fallback_recording")
    if fallback and fallback not in seen:
        out.append(RecordingRef("fallback message", fallback, None, None))
    return tuple(out)


# --- small helpers -----------------------------------------------------------------------

def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _iso_local(value: datetime | None, tz: ZoneInfo) -> str | None:
    return value.astimezone(tz).isoformat(timespec="seconds") if value else None


def fmt_human(value: datetime, tz: ZoneInfo) -> str:
    """'Thu Nov 26, 2026 9:41 PM EST' in the practice's zone."""
    local = value.astimezone(tz)
    return local.strftime("%a %b %d, %Y ") + local.strftime("%I:%M %p %Z").lstrip("0")


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _source_label(source: str | None) -> str:
    labels: dict[str, str] = {Source.CALLER_ID: "caller ID", Source.KEYED: "keyed in",
                              Source.RECORDING: "recorded",
                              Source.CALLER_ID_UNVALIDATED: "caller ID, not validated"}
    return labels.get(source or "", source or "unknown source")


def call_url(base: str, call_id: str) -> str | None:
    """The call's page in the portal (IVR_WEB_PUBLIC_URL), or None when none is set: the
    note's reader logs in there to listen to the recordings."""
    if not base:
        return None
    return f"{base.rstrip('/')}/calls/{quote(call_id, safe='')}"
