"""The shape of trunks.yaml, declared once (as ivr/rules/shape.py does for practices).

The validator's key tables and the JSON Schema (`ivr trunks schema`) both come from these
declarations.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ivr.rules.shape import ENV_RE, SLUG_RE, Obj, _int, opt, render, req
from ivr.trunks.model import CODECS, DTMF_MODES, FaxMode, MediaEncryption, Transport

HOST_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                     r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
#: SIP user parts we pass to PJSIP: account names and numbers, nothing that could end a
#: value or start another option.
USER_RE = re.compile(r"^[A-Za-z0-9+_.-]{1,64}$")
REALM_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
PATH_RE = re.compile(r"^/[A-Za-z0-9_./+-]{1,255}$")

STRING = {"type": "string"}
HOST = {"type": "string", "pattern": HOST_RE.pattern,
        "description": "The carrier's host name or IP address."}
NETWORK = {"type": "string", "description": "An IP address or network, e.g. 198.51.100.0/24."}
SECRET_KEYS = {"password_env": opt({"type": "string", "pattern": ENV_RE.pattern,
                                    "description": "Environment variable holding it."}),
               "password_file": opt({"type": "string", "pattern": PATH_RE.pattern,
                                     "description": "Absolute path of a file holding it."})}
ONE_SECRET = {"oneOf": [{"required": ["password_env"]}, {"required": ["password_file"]}]}

AUTH = Obj({
    "username": req({"type": "string", "pattern": USER_RE.pattern}),
    **SECRET_KEYS,
    "realm": opt({"type": "string", "pattern": REALM_RE.pattern}),
}, "Our digest credentials at the carrier, never the password itself.", ONE_SECRET)
REGISTER = Obj({
    "expiration": opt(_int(60, 86400, "Seconds a registration lasts (default 600).")),
    "retry_seconds": opt(_int(5, 3600, "Wait after a failed registration (default 30).")),
    "forbidden_retry_seconds": opt(_int(30, 86400, "Wait after a refusal such as a wrong "
                                        "password (default 300).")),
    "contact_user": opt({"type": "string", "pattern": USER_RE.pattern}),
}, "The PBX registers to the carrier; calls it sends to that registration are its.")
INBOUND = Obj({
    "match": opt({"type": "array", "items": NETWORK,
                  "description": "The carrier's addresses: calls from them are its."}),
    "register": opt({"anyOf": [{"type": "boolean"}, REGISTER]}),
}, "How calls from this carrier are told apart from anyone else's.",
    {"anyOf": [{"required": ["match"]}, {"required": ["register"]}]})
TRUNK = Obj({
    "name": req({"type": "string", "pattern": SLUG_RE.pattern}),
    "host": req(HOST),
    "port": opt(_int(1, 65535, "Default 5060, 5061 for TLS.")),
    "transport": opt({"enum": [t.value for t in Transport], "description": "Default udp."}),
    "media_encryption": opt({"enum": [m.value for m in MediaEncryption],
                             "description": "Default sdes on TLS, none otherwise; sdes "
                             "needs TLS."}),
    "codecs": opt({"type": "array", "items": {"enum": list(CODECS)}, "minItems": 1,
                   "uniqueItems": True}),
    "dtmf": opt({"enum": list(DTMF_MODES)}),
    "inbound": req(INBOUND),
    "auth": opt(AUTH),
    "from_user": opt({"type": "string", "pattern": USER_RE.pattern}),
    "from_domain": opt(HOST),
    "caller_id": opt({"type": "string", "pattern": r"^(practice|\+[1-9][0-9]{6,14})$",
                      "description": "practice (each practice's own number, the default) "
                      "or one E.164 number."}),
    "send_pai": opt({"type": "boolean", "description": "Caller ID in P-Asserted-Identity."}),
    "fax": opt({"enum": [f.value for f in FaxMode]}),
    "nat": opt({"type": "boolean", "description": "Symmetric RTP, rport and contact "
                "rewriting for a far end behind NAT."}),
    "max_calls": opt(_int(1, 2000, "Concurrent inbound calls (default 30).")),
    "qualify_seconds": opt(_int(0, 3600, "OPTIONS ping interval, 0 off (default 60).")),
})
TLS = Obj({
    "port": opt(_int(1, 65535)),
    "cert_file": opt({"type": "string", "pattern": PATH_RE.pattern}),
    "key_file": opt({"type": "string", "pattern": PATH_RE.pattern}),
    "ca_file": opt({"type": "string", "pattern": PATH_RE.pattern}),
    "verify_server": opt({"type": "boolean", "description": "Check the carrier's "
                          "certificate (default true)."}),
    "verify_client": opt({"type": "boolean"}),
}, "The TLS listener and how carriers' certificates are checked.")
NAT = Obj({
    "external_signaling_address": opt(STRING),
    "external_media_address": opt(STRING),
    "local_net": opt({"type": "array", "items": NETWORK}),
})
GUARD = Obj({
    "failures": opt(_int(1, 1000, "Failed authentications before a ban (default 5).")),
    "requests": opt(_int(5, 100000, "Requests before a ban, for floods (default 60).")),
    "window_seconds": opt(_int(1, 3600)),
    "ban_seconds": opt(_int(10, 30 * 86400)),
    "max_calls_per_source": opt(_int(1, 2000)),
    "never_ban": opt({"type": "array", "items": NETWORK}),
}, "Blocking scanners and floods.")
ROLES_OBJ = Obj({
    "clinicians": req({**STRING, "description": "The trunk that dials clinicians."}),
    "callbacks": opt({**STRING, "description": "Patient call-backs (the clinician trunk)."}),
    "fax": opt({**STRING, "description": "Faxes to practices (default: IVR_FAX_HOST)."}),
})
TOP = Obj({
    "trunks": req({"type": "array", "items": TRUNK, "minItems": 1}),
    "roles": req(ROLES_OBJ),
    "tls": opt(TLS),
    "nat": opt(NAT),
    "guard": opt(GUARD),
}, "The carrier trunks of the answering service's PBX.")

SCHEMA_ID = "https://github.com/ivr-answering/ivr/trunks.schema.json"


def json_schema() -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "Carrier trunks", **render(TOP)}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"
