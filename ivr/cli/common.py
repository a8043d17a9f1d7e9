"""What every command group shares: settings, the database, output, the audit entry."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from ivr import config
from ivr.cli import when
from ivr.cli.errors import UsageError

JSON_HELP = "print JSON instead of text (times in ISO UTC)"


def add_json(parser: Any, help: str = JSON_HELP) -> None:
    """The --json option every command that prints data has."""
    parser.add_argument("--json", action="store_true", help=help)


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


def instant_arg(option: str, text: str | None, tz: tzinfo = UTC,
                now: datetime | None = None) -> datetime | None:
    """An option's time (ivr.cli.when), None when not given; UsageError (exit 2) if bad."""
    if text is None:
        return None
    try:
        return when.parse_instant(text, now=now or datetime.now(UTC), tz=tz)
    except when.WhenError as exc:
        raise UsageError(f"{option} {exc}") from None


def day_arg(option: str, text: str, tz: tzinfo = UTC, now: datetime | None = None) -> date:
    """An option's local date (today, yesterday, 2026-11-26); UsageError (exit 2) if bad."""
    try:
        return when.parse_day(text, now=now or datetime.now(UTC), tz=tz)
    except when.WhenError as exc:
        raise UsageError(f"{option} {exc}") from None


def practice_zones() -> dict[str, tzinfo]:
    """Each practice's zone in the rules in force; none when the rules do not load."""
    from ivr.rules import load_rules

    try:
        result = load_rules(load_settings().rules_path, now=datetime.now(UTC))
    except Exception:  # the zones dress the output; `ivr rules check` reports rule errors
        return {}
    if result.rules is None:
        return {}
    return {pid: p.tz for pid, p in result.rules.practices.items()}


def zone_for(practice_id: str | None) -> tzinfo:
    """The zone a zone-less time means: the practice's where one is named, else UTC."""
    if not practice_id:
        return UTC
    return practice_zones().get(practice_id, UTC)


def human_time(value: datetime, tz: tzinfo, now: datetime | None = None) -> str:
    """'Tue 1 Dec 02:14 EST' in `tz` (with the year when it is not this year's)."""
    local = value.astimezone(tz)
    year = "" if local.year == (now or datetime.now(UTC)).astimezone(tz).year \
        else f" {local.year}"
    return f"{local:%a} {local.day} {local:%b}{year} {local:%H:%M} {local.tzname()}"


def humanize(row: Mapping[str, Any], zones: Mapping[str, tzinfo],
             zone: tzinfo | None = None) -> dict[str, Any]:
    """A row for the terminal: its ISO times (keys `*_at`, `at`, `promised_by`) shown in
    its practice's zone; nested rows too. JSON output keeps the ISO UTC times."""
    tz = zone or zones.get(str(row.get("practice_id") or ""), UTC)
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, str) and (key.endswith("_at") or key in ("at", "promised_by")):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
            if parsed is not None:
                value = human_time(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC), tz)
        elif isinstance(value, Mapping):
            value = humanize(value, zones, tz)
        elif isinstance(value, list):
            value = [humanize(v, zones, tz) if isinstance(v, Mapping) else v for v in value]
        out[key] = value
    return out


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


def example_did(settings: config.Settings) -> str | None:
    """The first number of the rules' practices (a hint for a person), None if none."""
    from ivr.rules import load_rules

    try:
        result = load_rules(settings.rules_path, now=datetime.now(UTC))
    except Exception:  # a hint only; the service itself reports rule errors
        return None
    if result.rules:
        for _, practice in sorted(result.rules.practices.items(), reverse=True):
            if practice.dids:
                return str(practice.dids[0])
    return None

