"""iCal shifts are a function of the instant asked about, never of the load's clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rules_helpers import DENVER, EXAMPLES

from ivr.rules import load_rules
from ivr.rules.oncall import resolve, timeline

# The first Friday night of a month is dr-nguyen's (RRULE:FREQ=MONTHLY;BYDAY=1FR).
FAR = datetime(2029, 3, 2, 20, 0, tzinfo=DENVER)
NEAR = datetime(2026, 12, 4, 20, 0, tzinfo=DENVER)


def _mesa(now: datetime):
    res = load_rules(EXAMPLES, now=now)
    assert res.ok, [str(e) for e in res.errors]
    return res.rules.practices["mesa-family"]


@pytest.mark.parametrize("now", [datetime(2026, 11, 20, 12, tzinfo=UTC),
                                 datetime(2029, 6, 1, 12, tzinfo=UTC)])
def test_recurring_event_resolves_whenever_the_rules_were_loaded(now):
    mesa = _mesa(now)
    assert resolve(mesa, "physician", FAR) == ("dr-nguyen", "ical")
    assert resolve(mesa, "physician", NEAR) == ("dr-nguyen", "ical")


def test_timeline_far_from_the_load_shows_the_events():
    mesa = _mesa(datetime(2026, 11, 20, 12, tzinfo=UTC))
    rows = timeline(mesa, datetime(2029, 3, 1, tzinfo=DENVER), datetime(2029, 3, 5, tzinfo=DENVER))
    ical = [r for r in rows if r.source == "ical"]
    assert [(r.clinician_id, r.start, r.end) for r in ical] == [
        ("dr-nguyen", datetime(2029, 3, 2, 17, 0, tzinfo=DENVER),
         datetime(2029, 3, 3, 8, 0, tzinfo=DENVER))]
