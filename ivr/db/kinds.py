"""The values a call record's state columns take, as enums (pure: no database)."""

from __future__ import annotations

from enum import StrEnum


class EndReason(StrEnum):
    """How a call ended (Call.end_reason)."""

    COMPLETED = "completed"  # the controller finished the flow
    CALLER_HANGUP = "caller_hangup"  # the caller hung up while the controller had the call
    FALLBACK_ANSWERED = "fallback_answered"  # the fallback reached a clinician
    FALLBACK_RECORDED = "fallback_recorded"  # the fallback took a recorded message
    FALLBACK_ABANDONED = "fallback_abandoned"  # caller hung up inside the fallback
    # The PBX ended the call itself (a restart or stop: its stamp says nobody hung up).
    PBX_RESTART = "pbx_restart"
    # The call vanished with no hang-up stamp and no channel: the PBX crashed or was killed.
    PBX_FAILURE = "pbx_failure"


class Source(StrEnum):
    """Where an intake field's value came from (IntakeField.source)."""

    KEYED = "keyed"  # typed on the keypad
    CALLER_ID = "caller_id"  # the network's caller ID
    # The caller ID in its raw strict form, which the number library refused: kept as an
    # abandoned caller's only lead, never dialled automatically.
    CALLER_ID_UNVALIDATED = "caller_id_unvalidated"
    RECORDING = "recording"  # spoken, recorded


class LegStatus(StrEnum):
    """Where a clinician leg stands (OncallLeg.status)."""

    PLACING = "placing"
    ANSWERED = "answered"  # answered, screening in progress (or interrupted)
    ACCEPTED = "accepted"  # pressed 1: live call bridged, or call-back acknowledged
    DECLINED = "declined"  # pressed 2, or hung up during screening
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"  # unreachable, congestion, refused by the gate
    SCREEN_TIMEOUT = "screen_timeout"  # answered, no key (a voicemail)
    CALLER_GONE = "caller_gone"  # the caller hung up while this leg rang or screened
    UNKNOWN = "unknown"
    COMPLETED = "completed"  # a patient call-back dialled by the clinician ended
    TAKEN_BY_OTHER = "taken_by_other"  # rung together with the leg that accepted


class LegKind(StrEnum):
    """Why a clinician leg was placed (OncallLeg.kind)."""

    LIVE = "live"  # the caller is waiting to be bridged
    CALLBACK = "callback"  # notifying the on-call of a message until acknowledged
    PATIENT = "patient"  # the acknowledging clinician calls the patient back


class CallbackStatus(StrEnum):
    """Where a call-back stands (OncallCallback.status)."""

    PENDING = "pending"
    ACKNOWLEDGED = "acknowledged"
    NOT_ACKNOWLEDGED = "not_acknowledged"  # the attempts ran out


class TranscriptStatus(StrEnum):
    """Where a recording's transcript stands (Transcript.status)."""

    DONE = "done"  # text (possibly empty: the engine heard no words)
    FAILED = "failed"  # the engine raised or the recording did not open; `note` says which
    SKIPPED = "skipped"  # no engine for the caller's language, or transcription is off


class Role(StrEnum):
    """What a portal user may see and do (ivr.accounts.access says exactly what)."""

    OPERATOR = "operator"  # the answering service's own staff: every practice
    PRACTICE_ADMIN = "practice_admin"  # one practice: read, and change what it owns
    FRONT_DESK = "front_desk"  # one practice: read only
    CLINICIAN = "clinician"  # one practice's calls, and the call-backs waiting for them
