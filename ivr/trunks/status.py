"""Registration state, read from Asterisk's `pjsip show registrations` (a pure parser)."""

from __future__ import annotations

import re

#: Asterisk 22's states (res_pjsip_outbound_registration.c sip_outbound_registration_
#: status_str): Registered, Unregistered, Rejected, Stopped (and Unknown before a try).
_ROW = re.compile(r"^\s*([a-z0-9-]+)-reg/\S+\s+\S+\s+(Registered|Unregistered|Rejected|"
                  r"Stopped|Unknown)\b(?:\s+\(exp\.\s*(\d+)s\))?", re.MULTILINE)


def registrations(cli_output: str) -> dict[str, dict[str, object]]:
    """trunk name -> {"state": ..., "expires_in": seconds or None}."""
    out: dict[str, dict[str, object]] = {}
    for match in _ROW.finditer(cli_output):
        out[match.group(1)] = {"state": match.group(2),
                               "expires_in": int(match.group(3)) if match.group(3) else None}
    return out
