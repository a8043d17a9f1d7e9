"""Identifiers the service makes: random, 32 hex digits, no meaning inside."""

from __future__ import annotations

import uuid


def new_id() -> str:
    """A fresh id for a call, a leg, a user or a request."""
    return uuid.uuid4().hex
