"""The append-only audit log: who read patient data or changed the rules, and when.

The service promises "an append-only audit log of every read of patient data and
every rules change (kept at least 6 years)". This module can add an entry (`record`) and
read entries (`read`), nothing else: there is no update and no delete, and the database
itself refuses both (migration 0006 adds triggers on SQLite and PostgreSQL). Retention
(ivr.retention.purge) never touches the table and nothing else purges it, so entries are kept
for as long as the database lives, which is at least the 6 years asked; archive the table
elsewhere if it ever grows too big, never trim it.

An entry names its subject by id (a call id, a report's document id, a rules digest, an
override id, a retention run id) and carries a small flat JSON `detail` of counts,
formats, digests and file names: never patient data (names, numbers, dates of birth,
reasons). `record` enforces the shape (a known action, a subject made of id characters, a
small flat detail) and raises on anything else.

What a failed write means is for the caller to say: the command line refuses to show
patient data whose read it could not log (fail closed); the controller logs the failure
and goes on, because a rules swap or a purge must not wait on the log.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.db.engine import Database
from ivr.db.models import AuditEntry
from ivr.rules.timeutil import require_aware

KEEP_YEARS = 6  # the minimum; nothing here deletes an entry at all

# Reads of patient data (the command line).
CALL_READ = "call.read"  # ivr calls show (the call's id); ivr calls list (no subject, a count)
NOTE_READ = "note.read"  # ivr notes show
REPORT_READ = "report.read"  # ivr report (a preview, shown or written as PDF)
REPORT_DELIVER = "report.deliver"  # ivr report --deliver
CALLBACKS_READ = "callbacks.read"  # ivr callbacks list
DELIVERIES_READ = "deliveries.read"  # ivr deliveries list
RECORDING_READ = "recording.read"  # ivr recordings export (a recording's plaintext WAV)
# Changes to the rules in force and to the schedule.
RULES_RELOAD = "rules.reload"  # the controller loaded rules with another digest
RULES_REFUSED = "rules.refused"  # the controller refused broken rules (old ones kept)
OVERRIDE_SET = "override.set"
OVERRIDE_CLEAR = "override.clear"
# Deletion of patient data.
RETENTION_RUN = "retention.run"  # one entry per run (its counts are in retention_log)
# Attacks on the trust boundary (ivr.agi): a refused header block or a second call start.
AGI_REFUSED = "agi.refused"  # subject: the uniqueid when well-formed; detail: the reason
# The keys that seal patient data (key ids and counts only, never a key).
KEYS_ROTATE = "keys.rotate"  # ivr keys rotate: every sealed value opened and sealed again

ACTIONS = (CALL_READ, NOTE_READ, REPORT_READ, REPORT_DELIVER, CALLBACKS_READ,
           DELIVERIES_READ, RECORDING_READ, RULES_RELOAD, RULES_REFUSED, OVERRIDE_SET,
           OVERRIDE_CLEAR, RETENTION_RUN, KEYS_ROTATE, AGI_REFUSED)

# Ids only: letters, digits and . _ : - (a free-text name or a "+1..." number cannot pass).
_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
DETAIL_MAX = 4000  # characters of JSON
TEXT_MAX = 200  # characters of one string in the detail


class AuditError(RuntimeError):
    """An audit entry could not be written; the message names no patient data."""

    @classmethod
    def of(cls, exc: BaseException, consequence: str) -> AuditError:
        """From the failure: its type and first line (no parameters), and what follows."""
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        return cls(f"cannot write the audit log ({type(exc).__name__}: {first}); "
                   f"{consequence}")


def cli_actor() -> str:
    """'cli:<os user>:<pid>'. The user comes from the real uid, not $USER, which anyone sets."""
    try:
        import pwd

        user = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # no passwd entry (some containers)
        user = f"uid{os.getuid()}"
    return f"cli:{user}:{os.getpid()}"


def controller_actor(instance: str) -> str:
    return f"controller:{instance}"


def _checked_detail(detail: dict[str, Any] | None) -> str:
    detail = detail or {}
    for key, value in detail.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if not isinstance(key, str) or not all(
                v is None or isinstance(v, (str, int, float, bool)) for v in values):
            raise ValueError(f"audit detail {key!r}: expected scalars or a list of them")
        if any(isinstance(v, str) and len(v) > TEXT_MAX for v in values):
            raise ValueError(f"audit detail {key!r}: a string longer than {TEXT_MAX}")
    text = json.dumps(detail, sort_keys=True, separators=(",", ":"))
    if len(text) > DETAIL_MAX:
        raise ValueError(f"audit detail is {len(text)} characters; at most {DETAIL_MAX}")
    return text


def _entry(actor: str, action: str, practice_id: str | None, subject: str | None,
           detail: dict[str, Any] | None, at: datetime | None) -> AuditEntry:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; expected one of {ACTIONS}")
    if not actor or len(actor) > 96:
        raise ValueError("audit actor must be 1-96 characters, e.g. cli:root:1234")
    for name, value in (("practice_id", practice_id), ("subject", subject)):
        if value is not None and not _ID.fullmatch(value):
            raise ValueError(f"audit {name} must be an id (letters, digits, . _ : -), "
                             f"at most 64 characters")
    when = datetime.now(UTC) if at is None else require_aware(at, "at")
    return AuditEntry(at=when, actor=actor, action=action, practice_id=practice_id,
                      subject=subject, detail=_checked_detail(detail))


async def record(db: Database | AsyncSession, actor: str, action: str, *,
                 practice_id: str | None = None, subject: str | None = None,
                 detail: dict[str, Any] | None = None, at: datetime | None = None) -> int:
    """Append one entry; its id. Given a session, the entry joins that transaction.

    Joining the transaction of the change it records (an override) means the change and
    its entry are committed together or not at all. Any failure raises.
    """
    entry = _entry(actor, action, practice_id, subject, detail, at)
    if isinstance(db, AsyncSession):
        db.add(entry)
        await db.flush()
        return entry.id
    async with db.session() as session:
        session.add(entry)
        await session.flush()
        return entry.id


def action_filter(action: str) -> tuple[str, ...]:
    """The actions `--action` means: one ('rules.reload') or a family ('rules').

    ValueError names the known ones when it matches none.
    """
    matched = tuple(a for a in ACTIONS if a == action or a.split(".", 1)[0] == action)
    if not matched:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)} "
                         "(or a family such as 'rules')")
    return matched


async def read(db: Database, *, since: datetime | None = None, action: str | None = None,
               practice_id: str | None = None, subject: str | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
    """Entries, newest first; `action` may be a family ('rules' = rules.*)."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if since is not None:
        query = query.where(AuditEntry.at >= require_aware(since, "since"))
    if action is not None:
        query = query.where(AuditEntry.action.in_(action_filter(action)))
    if practice_id is not None:
        query = query.where(AuditEntry.practice_id == practice_id)
    if subject is not None:
        query = query.where(AuditEntry.subject == subject)
    async with db.session() as session:
        rows = (await session.scalars(query.limit(max(limit, 0)))).all()
    return [{"id": r.id, "at": r.at.isoformat(), "actor": r.actor, "action": r.action,
             "practice_id": r.practice_id, "subject": r.subject,
             "detail": json.loads(r.detail or "{}")} for r in rows]
