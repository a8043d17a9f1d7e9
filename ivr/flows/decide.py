"""The call's decision (route and state), shared with `ivr simulate`: see ivr.rules.decision."""

from __future__ import annotations

from ivr.rules.decision import (
           ROUTE_AFTER_HOURS,
           ROUTE_OPEN_DIRECT,
           ROUTE_OVERFLOW,
           ROUTE_UNKNOWN,
           ROUTES,
           Decision,
           decide,
           find_practice,
)

__all__ = ["ROUTES", "ROUTE_AFTER_HOURS", "ROUTE_OPEN_DIRECT", "ROUTE_OVERFLOW",
           "ROUTE_UNKNOWN", "Decision", "decide", "find_practice"]
