"""The optional test phone: one SIP account a person registers a softphone with.

Off unless IVR_TEST_PHONE=1 (`make run` turns it on). Its password is random, made once
per instance (root's 0600 file beside the AMI secret) and printed by `ivr run`. What it
dials reaches the service as a forwarded call to the example practice would: a full
E.164 number as dialled, anything else the first practice's number.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

USERNAME = "testphone"
#: Named as the user: PJSIP finds a request's endpoint by its From user, and the AOR a
#: REGISTER updates by its To user.
ENDPOINT = USERNAME
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_PASSWORD = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def first_did(rules_path: Path) -> str | None:
    """The first number of the rules' practices (a hint for a person), None if none."""
    from ivr.rules import load_rules

    try:
        result = load_rules(rules_path, now=datetime.now(UTC))
    except Exception:  # a hint only; the service itself reports rule errors
        return None
    if result.rules:
        for _, practice in sorted(result.rules.practices.items(), reverse=True):
            if practice.dids:
                return str(practice.dids[0])
    return None


def sections(password: str, did: str | None) -> str:
    """The PJSIP endpoint, auth and AOR of the test phone (UDP, G.711, no SRTP)."""
    assert _PASSWORD.match(password), "made by PbxInstance.private_secret"
    target = did if did and _E164.match(did) else ""
    return f"""; The test phone (IVR_TEST_PHONE=1): user {USERNAME}, password in test-phone.secret.
[{ENDPOINT}]
type = endpoint
transport = transport-udp
context = ivr-test-phone
set_var = IVR_TEST_PHONE_DID={target}
auth = {ENDPOINT}
aors = {ENDPOINT}
disallow = all
allow = ulaw,alaw
dtmf_mode = rfc4733
direct_media = no
rtp_symmetric = yes
force_rport = yes
rewrite_contact = yes
trust_id_inbound = no
allow_subscribe = no

[{ENDPOINT}]
type = auth
auth_type = userpass
username = {USERNAME}
password = {password}

[{ENDPOINT}]
type = aor
max_contacts = 1
remove_existing = yes
"""
