"""The language choice at the start of a call: which key picks which language (pure).

Shared by the live call (ivr.flows.language) and `ivr rules simulate`, so both read a
caller's key the same way: 1 for the first language offered, 2 for the second...; no key
or any other key is the default language (the first), never a repeat or silence.
"""

from __future__ import annotations

from collections.abc import Sequence

CHOSEN, NO_INPUT, INVALID = "chosen", "no_input", "invalid"


def choice_keys(offered: Sequence[str]) -> dict[str, str]:
    """key -> language tag, in the order the practice offers them."""
    return {str(n): tag for n, tag in enumerate(offered[:9], start=1)}


def choose(offered: Sequence[str], key: str | None) -> tuple[str, str]:
    """(language, how it was chosen) for the key a caller pressed, or None for no key."""
    keys = choice_keys(offered)
    if key is None:
        return offered[0], NO_INPUT
    if key not in keys:
        return offered[0], INVALID
    return keys[key], CHOSEN
