"""Hang-up stamps: the dialplan's record of how each call ended, parsed (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ivr import contract


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
    hangup_cause: str = ""
    hangup_by: str = ""  # contract.HANGUP_BY_*, "" in stamps older than that field
    fallback_reason: str = ""  # contract.REASON_*, "" outside the fallback and in old stamps
    #: Fields whose content did not have their strict form and were left empty.
    dropped: tuple[str, ...] = ()


_UNIQUEID = re.compile(r"(?:[A-Za-z0-9_-]{1,40}-)?[0-9]{1,12}\.[0-9]{1,12}")
#: A strict number: what the dialplan's [ivr-strict] lets through (or nothing).
_NUMBER = re.compile(r"(?:\+?[0-9]{1,20})?")
_TOKEN = re.compile(r"[a-zA-Z0-9_-]{0,64}")
_FORMS = {"did": _NUMBER, "forwarded_from": _NUMBER, "caller": _NUMBER,
          "result": _TOKEN, "stage": _TOKEN, "call_id": _TOKEN, "dialstatus": _TOKEN,
          "hangup_cause": re.compile(r"[0-9]{0,3}"), "start_epoch": re.compile(r"[0-9]{0,12}"),
          "hangup_by": re.compile(r"(?:caller|pbx|other)?"), "fallback_reason": _TOKEN}
#: Stamps written by older dialplans lack the last fields (cause, who hung up, reason).
_OLD_FIELDS = contract.STAMP_FIELDS[:9]


def parse_stamp(uniqueid: str, value: str) -> Stamp:
    """Parse `start|end|did|fwd|caller|result|stage|call_id|dialstatus|cause|by`.

    Only the uniqueid and the end time must be right (without them the stamp belongs to
    no call at no time): any other field that lacks its strict form is left empty and
    named in `dropped`, so a hostile value costs that field, never the call's record.
    """
    if not _UNIQUEID.fullmatch(uniqueid):
        raise StampError("bad uniqueid")
    parts = value.strip().split("|")
    if len(parts) < len(_OLD_FIELDS):
        raise StampError(f"{len(parts)} fields, expected {len(contract.STAMP_FIELDS)}")
    names = contract.STAMP_FIELDS[:max(len(parts), len(_OLD_FIELDS))]
    if len(parts) > len(names):
        # A '|' can only come from a field the dialplan did not filter: the fields past
        # the caller's are then unreliable, the first five are still in place.
        parts = parts[:5] + [""] * (len(names) - 5)
        extra_dropped: tuple[str, ...] = names[5:]
    else:
        extra_dropped = ()
    fields = dict(zip(names, parts, strict=True))
    for name in contract.STAMP_FIELDS:
        fields.setdefault(name, "")
    if not fields["end_epoch"].isdigit() or len(fields["end_epoch"]) > 12:
        raise StampError("bad end epoch")
    dropped = list(extra_dropped)
    for name, form in _FORMS.items():
        if not form.fullmatch(fields[name]):
            fields[name] = ""
            dropped.append(name)
    ended = datetime.fromtimestamp(int(fields["end_epoch"]), UTC)
    started = datetime.fromtimestamp(int(fields["start_epoch"]), UTC) \
        if fields["start_epoch"] else ended
    return Stamp(uniqueid=uniqueid, started_at=started, ended_at=ended, did=fields["did"],
                 forwarded_from=fields["forwarded_from"], caller=fields["caller"],
                 result=fields["result"], stage=fields["stage"], call_id=fields["call_id"],
                 dialstatus=fields["dialstatus"], hangup_cause=fields["hangup_cause"],
                 hangup_by=fields["hangup_by"], fallback_reason=fields["fallback_reason"],
                 dropped=tuple(dict.fromkeys(dropped)))
