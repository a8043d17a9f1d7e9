"""The database schema: calls, their timelines, intakes and recordings.

Schema changes go through Alembic (ivr/db/migrations); a test checks the migrations and
these models agree.

Times are aware UTC datetimes. Patient data (the caller's number) is stored here and
nowhere else; logs carry only call ids. The columns holding patient values are sealed
(ivr.db.sealed: AES-256-GCM, each value bound to its row), listed at the end.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ivr.db.kinds import CallbackStatus, EndReason, LegKind, LegStatus, Source
from ivr.db.sealed import BlindIndex, SealedText, seal_columns


class UtcDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC; SQLite hands back naive ones, made aware again here."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


# How a call ended. The controller sets the first three; reconciliation of a hang-up
# stamp sets the fallback ones for calls the controller did not finish.


END_COMPLETED = EndReason.COMPLETED
END_CALLER_HANGUP = EndReason.CALLER_HANGUP
END_FALLBACK_ANSWERED = EndReason.FALLBACK_ANSWERED
END_FALLBACK_RECORDED = EndReason.FALLBACK_RECORDED
END_FALLBACK_ABANDONED = EndReason.FALLBACK_ABANDONED
END_PBX_RESTART = EndReason.PBX_RESTART
END_PBX_FAILURE = EndReason.PBX_FAILURE
END_REASONS = tuple(EndReason)


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    uniqueid: Mapped[str] = mapped_column(String(64))  # Asterisk's UNIQUEID
    node: Mapped[str] = mapped_column(String(40))  # which PBX instance took it
    practice_id: Mapped[str | None] = mapped_column(String(64), index=True)
    dialled: Mapped[str] = mapped_column(String(32), default="")
    forwarded_from: Mapped[str] = mapped_column(String(32), default="")
    caller: Mapped[str] = mapped_column(SealedText(), default="")  # sealed
    # Blind index of `caller` (ivr.db.sealed), to find a number's calls without opening
    # every row; NULL for an anonymous caller.
    caller_index: Mapped[str | None] = mapped_column(String(32), index=True)
    route: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    end_reason: Mapped[str | None] = mapped_column(String(32))
    # What the controller asked of the dialplan last ("done", "fallback"), and why.
    result: Mapped[str | None] = mapped_column(String(16))
    fallback_reason: Mapped[str | None] = mapped_column(String(64))
    last_stage: Mapped[str | None] = mapped_column(String(32))
    fallback_recording: Mapped[str | None] = mapped_column(Text)
    seen_by_controller: Mapped[bool] = mapped_column(default=False)
    reconciled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The flow's decisions (ivr.flows): which rules, which state, what the caller chose
    # and what they were told. All set step by step while the call runs.
    rules_digest: Mapped[str | None] = mapped_column(String(32))
    state_kind: Mapped[str | None] = mapped_column(String(16))
    state_reason: Mapped[str | None] = mapped_column(String(200))
    disposition: Mapped[str | None] = mapped_column(String(16))
    caller_told: Mapped[str | None] = mapped_column(Text)
    operator_flag: Mapped[bool] = mapped_column(default=False)  # a person must route it
    same_day_callback: Mapped[bool] = mapped_column(default=False)
    abandoned_step: Mapped[str | None] = mapped_column(String(32))  # step of the hang-up
    # Reaching the on-call (ivr.flows.bridge, ivr.oncall.scheduler): connected live,
    # acknowledged by call-back, not acknowledged, or pending; and who took it.
    oncall_outcome: Mapped[str | None] = mapped_column(String(24))
    oncall_clinician: Mapped[str | None] = mapped_column(String(64))
    # When the retention purge (ivr.retention.purge) deleted the call's recordings.
    recordings_purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The caller's language (a tag such as es-US), and the red-flag topic a transcript of
    # the reason matched (ivr.flows.redflag): shown to the clinician and in the note.
    language: Mapped[str | None] = mapped_column(String(16))
    red_flag_topic: Mapped[str | None] = mapped_column(String(32))

    events: Mapped[list[CallEvent]] = relationship(
        back_populates="call", order_by="CallEvent.id", cascade="all, delete-orphan")
    intake: Mapped[list[IntakeField]] = relationship(
        order_by="IntakeField.id", cascade="all, delete-orphan")
    recordings: Mapped[list[Recording]] = relationship(
        order_by="Recording.id", cascade="all, delete-orphan")
    transcripts: Mapped[list[Transcript]] = relationship(
        order_by="Transcript.id", cascade="all, delete-orphan")

    __table_args__ = (Index("ix_calls_node_uniqueid", "node", "uniqueid", unique=True),)


class CallEvent(Base):
    """One step of a call's timeline (no patient data in `detail`)."""

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"),
                                         index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(48))
    detail: Mapped[str] = mapped_column(Text, default="{}")

    call: Mapped[Call] = relationship(back_populates="events")


class ManualOverride(Base):
    """'Closed now until ...' / 'open until ...' set from the command line (ivr.records.overrides).

    Admin data, no patient data. Never deleted: clearing stamps `cleared_at`, so the table
    doubles as the record of who-changed-what-when for the schedule.
    """

    __tablename__ = "manual_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    practice_id: Mapped[str] = mapped_column(String(64), index=True)
    is_open: Mapped[bool] = mapped_column()
    start: Mapped[datetime] = mapped_column(UtcDateTime())
    end: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


# Where an intake value came from.


SOURCE_KEYED = Source.KEYED
SOURCE_CALLER_ID = Source.CALLER_ID
SOURCE_RECORDING = Source.RECORDING
SOURCE_CALLER_ID_UNVALIDATED = Source.CALLER_ID_UNVALIDATED


class IntakeField(Base):
    """One intake field of a call, written the moment it is captured (patient data)."""

    __tablename__ = "intake_fields"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"),
                                         index=True)
    field: Mapped[str] = mapped_column(String(16))  # callback | dob | name | reason
    value: Mapped[str | None] = mapped_column(SealedText())  # E.164 number, ISO date; sealed
    recording_path: Mapped[str | None] = mapped_column(Text)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    captured_at: Mapped[datetime] = mapped_column(UtcDateTime())
    confirmed: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (Index("ix_intake_fields_call_field", "call_id", "field", unique=True),)


class Recording(Base):
    """A caller's recording kept in the data folder (the spool copy is moved, not copied)."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"),
                                         index=True)
    field: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    duration_seconds: Mapped[float] = mapped_column(Float)
    size_bytes: Mapped[int] = mapped_column(Integer)
    peak: Mapped[int] = mapped_column(Integer)  # max |sample|, 16-bit scale
    rms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Transcript(Base):
    """A machine transcript of one recording (ivr.transcribe); the recording stays the
    source of truth. `text` and `red_flag` (the phrase matched) are patient data, sealed."""

    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"),
                                         index=True)
    field: Mapped[str] = mapped_column(String(16))  # name | reason
    status: Mapped[str] = mapped_column(String(16))  # TranscriptStatus
    language: Mapped[str] = mapped_column(String(16))
    engine: Mapped[str] = mapped_column(String(32), default="")
    engine_version: Mapped[str] = mapped_column(String(120), default="")
    text: Mapped[str] = mapped_column(SealedText(), default="")  # sealed
    confidence: Mapped[float | None] = mapped_column(Float)
    audio_seconds: Mapped[float | None] = mapped_column(Float)
    cpu_seconds: Mapped[float | None] = mapped_column(Float)  # the engine's, in its worker
    wall_seconds: Mapped[float | None] = mapped_column(Float)  # sealed file to stored row
    red_flag_topic: Mapped[str | None] = mapped_column(String(32))  # e.g. "breathing"
    red_flag: Mapped[str] = mapped_column(SealedText(), default="")  # the phrase; sealed
    note: Mapped[str] = mapped_column(String(200), default="")  # why skipped or failed
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_transcripts_call_field", "call_id", "field", unique=True),)


# What happened to one clinician leg (OncallLeg.status). `placing` is written and
# committed before the Originate; `unknown` means the controller lost track of an
# Originate (AMI dropped or controller restarted) and found no live channel for it.


LEG_PLACING = LegStatus.PLACING
LEG_ANSWERED = LegStatus.ANSWERED
LEG_ACCEPTED = LegStatus.ACCEPTED
LEG_DECLINED = LegStatus.DECLINED
LEG_NO_ANSWER = LegStatus.NO_ANSWER
LEG_BUSY = LegStatus.BUSY
LEG_FAILED = LegStatus.FAILED
LEG_SCREEN_TIMEOUT = LegStatus.SCREEN_TIMEOUT
LEG_CALLER_GONE = LegStatus.CALLER_GONE
LEG_UNKNOWN = LegStatus.UNKNOWN
LEG_COMPLETED = LegStatus.COMPLETED
LEG_TAKEN_BY_OTHER = LegStatus.TAKEN_BY_OTHER
LEG_ACTIVE = (LEG_PLACING, LEG_ANSWERED)
LEG_LIVE = LegKind.LIVE
LEG_CALLBACK = LegKind.CALLBACK
LEG_PATIENT = LegKind.PATIENT

# OncallCallback.status


CB_PENDING = CallbackStatus.PENDING
CB_ACKNOWLEDGED = CallbackStatus.ACKNOWLEDGED
CB_NOT_ACKNOWLEDGED = CallbackStatus.NOT_ACKNOWLEDGED

# Call.oncall_outcome
OUTCOME_CONNECTED = "connected"
OUTCOME_ACKNOWLEDGED = "acknowledged"
OUTCOME_PENDING = "callback_pending"
OUTCOME_NOT_ACKNOWLEDGED = "not_acknowledged"


class OncallCallback(Base):
    """A message the on-call must acknowledge; the scheduler calls until someone does."""

    __tablename__ = "oncall_callbacks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    practice_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # attempts claimed so far
    max_attempts: Mapped[int] = mapped_column(Integer)
    interval_seconds: Mapped[float] = mapped_column(Float)  # between two attempts
    promised_by: Mapped[datetime | None] = mapped_column(UtcDateTime())  # told the caller
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))  # clinician id
    acknowledged_via: Mapped[str | None] = mapped_column(String(16))
    # ^ callback (a call-back leg) | live (the caller left during screening) | clinician-line

    __table_args__ = (
        Index("ix_oncall_callbacks_call_id", "call_id", unique=True),
        Index("ix_oncall_callbacks_status_next", "status", "next_attempt_at"),
    )


class OncallLeg(Base):
    """One call placed to a clinician (or, after an acknowledgement, to the patient)."""

    __tablename__ = "oncall_legs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"),
                                         index=True)
    callback_id: Mapped[str | None] = mapped_column(
        ForeignKey("oncall_callbacks.id", ondelete="CASCADE"))
    attempt_no: Mapped[int | None] = mapped_column(Integer)  # within its call-back
    kind: Mapped[str] = mapped_column(String(16))  # live | callback | patient
    practice_id: Mapped[str] = mapped_column(String(64))
    clinician_id: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(16))
    # E.164, passed the dialling gate; sealed (a patient leg's is the patient's number)
    number: Mapped[str] = mapped_column(SealedText())
    step_index: Mapped[int | None] = mapped_column(Integer)
    channel_id: Mapped[str] = mapped_column(String(64))  # the Uniqueid we gave Asterisk
    channel: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(64))  # hang-up cause, reason
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ring_ms: Mapped[int | None] = mapped_column(Integer)
    bridged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    bridge_seconds: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_oncall_legs_callback_attempt", "callback_id", "attempt_no", unique=True),
        Index("ix_oncall_legs_status", "status"),
    )


# Report.status (ivr.documents.store): claimed by one controller, then made. A claim whose
# lease ran out (the controller died while making it) is taken over by another.
REPORT_MAKING = "making"
REPORT_MADE = "made"


class Report(Base):
    """One practice's morning report for one night: made once, whoever races for it."""

    __tablename__ = "reports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    practice_id: Mapped[str] = mapped_column(String(64))
    night: Mapped[str] = mapped_column(String(10))  # ISO date, ivr.documents.report
    status: Mapped[str] = mapped_column(String(16))
    claimed_by: Mapped[str] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    made_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    covers_from: Mapped[datetime] = mapped_column(UtcDateTime())
    closing: Mapped[datetime | None] = mapped_column(UtcDateTime())
    opening: Mapped[datetime] = mapped_column(UtcDateTime())
    call_count: Mapped[int | None] = mapped_column(Integer)
    needs_action: Mapped[int | None] = mapped_column(Integer)
    pdf_path: Mapped[str | None] = mapped_column(Text)
    json_path: Mapped[str | None] = mapped_column(Text)
    deliveries: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of ids

    __table_args__ = (
        Index("ix_reports_practice_night", "practice_id", "night", unique=True),
        Index("ix_reports_practice_opening", "practice_id", "opening"),
    )


class RetentionLog(Base):
    """One retention run's counts for one practice (ivr.retention.purge): append-only.

    Counts, days and ids only, never patient data. `practice_id` NULL: the calls to
    numbers no practice claims (the default policy).
    """

    __tablename__ = "retention_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(32))  # the rows of one run share it
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    worker: Mapped[str] = mapped_column(String(64))  # host:pid of the controller or CLI
    practice_id: Mapped[str | None] = mapped_column(String(64))
    recordings_days: Mapped[int] = mapped_column(Integer)  # the policy applied
    records_days: Mapped[int | None] = mapped_column(Integer)  # None: records kept
    dry_run: Mapped[bool] = mapped_column()
    calls_purged: Mapped[int] = mapped_column(Integer)  # calls whose recordings went
    recordings_deleted: Mapped[int] = mapped_column(Integer)  # recording files
    calls_deleted: Mapped[int] = mapped_column(Integer)  # whole records
    documents_deleted: Mapped[int] = mapped_column(Integer)  # note and report files
    bytes_freed: Mapped[int] = mapped_column(BigInteger)
    files_refused: Mapped[int] = mapped_column(Integer)  # paths outside the data folder
    calls_held: Mapped[int] = mapped_column(Integer)  # due, kept: in progress or pending work


class AuditEntry(Base):
    """One read of patient data or one change to the rules (ivr.records.audit): append-only.

    Kept at least 6 years (HIPAA); nothing in this code ever updates or deletes a row, and
    the migration makes the database refuse it. `subject` names a call, report or rules
    digest and is deliberately not a foreign key: the entry outlives the record it names.
    Ids, digests, counts and file names only, never patient data.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(96))  # cli:<os user>:<pid> | controller:<inst>
    action: Mapped[str] = mapped_column(String(32))  # call.read, rules.reload, ...
    practice_id: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="{}")  # small JSON object

    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_action_at", "action", "at"),
        Index("ix_audit_log_practice_at", "practice_id", "at"),
    )


class JournalApplied(Base):
    """A controller's journal entry (ivr.records.journal) that is in the record: its id is
    written in the same transaction as the entry's own write, so a replay that runs twice
    (a crash between the commit and the journal's own mark) writes once."""

    __tablename__ = "journal_applied"

    entry_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"),
                                         index=True)
    applied_at: Mapped[datetime] = mapped_column(UtcDateTime())


# --- sealed columns ----------------------------------------------------------------------
# Each value is bound to its row by the place below: moved into another row it no longer
# opens. The audit log holds no patient data and stays plain (and append-only).

CALLER_INDEX = "calls.caller"  # the blind index's purpose (ivr.records.calls.calls_from)

seal_columns(Call, {"caller": lambda row: f"calls.caller:{row.id}"},
             [BlindIndex("caller_index", "caller", CALLER_INDEX)])
seal_columns(IntakeField, {"value": lambda row: f"intake_fields.value:{row.call_id}:{row.field}"})
seal_columns(Transcript, {
    "text": lambda row: f"transcripts.text:{row.call_id}:{row.field}",
    "red_flag": lambda row: f"transcripts.red_flag:{row.call_id}:{row.field}"})
seal_columns(OncallLeg, {"number": lambda row: f"oncall_legs.number:{row.id}"})
