"""Hang-up stamps: the dialplan's record of how each call ended, parsed (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from . import contract


class StampError(ValueError):
    """A stamp in AstDB does not have the shape the dialplan writes."""


@dataclass(frozen=True)
class Stamp:
    uniqueid: str
    started_at: datetime
    ended_at: datetime
    did: str
    forwarded_from: str
    caller: str
    result: str
    stage: str
    call_id: str
    dialstatus: str


_UNIQUEID = re.compile(r"(?:[a-z0-9_-]+-)?[0-9]+\.[0-9]+")
_DIGITS = re.compile(r"\+?[0-9]*")
_TOKEN = re.compile(r"[a-zA-Z0-9_-]*")


def _epoch(value: str, fallback: datetime | None = None) -> datetime:
    if value == "" and fallback is not None:
        return fallback
    if not value.isdigit():
        raise StampError("bad epoch")
    return datetime.fromtimestamp(int(value), UTC)


def parse_stamp(uniqueid: str, value: str) -> Stamp:
    """Parse `start|end|did|fwd|caller|result|stage|call_id|dialstatus` (contract order)."""
    if not _UNIQUEID.fullmatch(uniqueid):
        raise StampError("bad uniqueid")
    parts = value.split("|")
    if len(parts) != len(contract.STAMP_FIELDS):
        raise StampError(f"{len(parts)} fields, expected {len(contract.STAMP_FIELDS)}")
    fields = dict(zip(contract.STAMP_FIELDS, parts, strict=True))
    for name in ("did", "forwarded_from", "caller"):
        if not _DIGITS.fullmatch(fields[name]):
            raise StampError(f"bad {name}")
    for name in ("result", "stage", "call_id", "dialstatus"):
        if not _TOKEN.fullmatch(fields[name]):
            raise StampError(f"bad {name}")
    ended = _epoch(fields["end_epoch"])
    return Stamp(uniqueid=uniqueid, started_at=_epoch(fields["start_epoch"], ended),
                 ended_at=ended, did=fields["did"], forwarded_from=fields["forwarded_from"],
                 caller=fields["caller"], result=fields["result"], stage=fields["stage"],
                 call_id=fields["call_id"], dialstatus=fields["dialstatus"])
