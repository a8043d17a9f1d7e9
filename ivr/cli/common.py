"""What every command group shares: settings, the database, output, the audit entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ivr import config


def load_settings() -> config.Settings:
    return config.from_env()


def show(data: Any, as_json: bool, empty: str | None = None) -> None:
    """JSON, or one line per row / key; `empty`: what to say instead of an empty list."""
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    elif isinstance(data, list):
        if not data and empty:
            print(empty)
        for row in data:
            print("  ".join(f"{k}={v}" for k, v in row.items() if v not in (None, "")))
    elif isinstance(data, dict):
        for key, value in data.items():
            print(f"{key}: {value if not isinstance(value, (list, dict)) else json.dumps(value)}")
    else:
        print(data)


async def with_db(fn: Callable[[Any], Any]) -> Any:
    from ivr.db.engine import Database

    db = Database(load_settings().database_url)
    try:
        await db.create()
        return await fn(db)
    finally:
        await db.close()


# Every command that shows patient data writes its audit entry (ivr.records.audit) after reading
# and before showing anything: no entry, no data (main() turns AuditError into exit 1).

async def audit_entry(db: Any, action: str, *, practice_id: str | None = None,
                 subject: str | None = None, detail: dict[str, Any] | None = None,
                 consequence: str = "nothing is shown without its audit entry") -> None:
    """This command's audit entry; AuditError (the command shows nothing) if it fails."""
    from ivr.records import audit

    try:
        await audit.record(db, audit.cli_actor(), action, practice_id=practice_id,
                           subject=subject, detail=detail)
    except Exception as exc:
        raise audit.AuditError.of(exc, consequence) from exc
