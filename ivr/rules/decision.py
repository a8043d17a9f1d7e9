"""Which practice a call is for, its state at the instant of the call, and the route taken.

Pure: the rules, the numbers, the instant and the manual overrides come in, a Decision
comes out. The live call flow (ivr.flows) and `ivr simulate` both start from it, so a
dry run cannot take another route than a real call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ivr.rules.model import Override, Practice, RuleSet
from ivr.rules.schedule import PracticeState, next_opening, state_at
from ivr.rules.timeutil import require_aware


class Route(StrEnum):
    """How a call is handled, decided once when it starts (Call.route)."""

    AFTER_HOURS = "after_hours"
    OVERFLOW = "overflow"  # forwarded while open: the front desk is busy
    OPEN_DIRECT = "open_direct"  # dialled straight while open: handled as overflow
    UNKNOWN = "unknown_number"  # no practice claims the number
    # Set later in the call: a clinician calling in who gave the right PIN.
    CLINICIAN_LINE = "clinician_line"


ROUTE_AFTER_HOURS = Route.AFTER_HOURS
ROUTE_OVERFLOW = Route.OVERFLOW
ROUTE_OPEN_DIRECT = Route.OPEN_DIRECT
ROUTE_UNKNOWN = Route.UNKNOWN
ROUTES = (ROUTE_AFTER_HOURS, ROUTE_OVERFLOW, ROUTE_OPEN_DIRECT, ROUTE_UNKNOWN)


@dataclass(frozen=True)
class Decision:
    """What the flow does with a call, decided once when it starts."""

    practice: Practice | None
    route: str
    state: PracticeState | None
    reopens_at: datetime | None  # when closed: the next opening (the callback promise)
    closes_at: datetime | None  # when open: the next change (the same-day promise)

    @property
    def is_overflow(self) -> bool:
        return self.route in (ROUTE_OVERFLOW, ROUTE_OPEN_DIRECT)

    @property
    def operator_flag(self) -> bool:
        """No practice to triage for: the intake is taken for an operator."""
        return self.route == ROUTE_UNKNOWN


def find_practice(rules: RuleSet | None, dialled: str | None,
                  forwarded_from: str | None) -> Practice | None:
    """The practice by forwarding number first (what the patient dialled), then by DID."""
    if rules is None:
        return None
    return rules.route(dialled, forwarded_from)


def decide(rules: RuleSet | None, dialled: str | None, forwarded_from: str | None,
           instant: datetime, overrides: tuple[Override, ...] = ()) -> Decision:
    """The decision for a call at `instant`; `overrides` are the practice's manual ones."""
    instant = require_aware(instant, "instant")
    practice = find_practice(rules, dialled, forwarded_from)
    if practice is None:
        return Decision(None, ROUTE_UNKNOWN, None, None, None)
    state = state_at(practice, instant, overrides)
    if not state.is_open:
        return Decision(practice, ROUTE_AFTER_HOURS, state,
                        next_opening(practice, instant, overrides), None)
    forwarded = bool(forwarded_from and forwarded_from.strip())
    return Decision(practice, ROUTE_OVERFLOW if forwarded else ROUTE_OPEN_DIRECT, state,
                    None, state.next_change)
