"""trunks.yaml: located errors, secrets never in the file, and what reaches pjsip.conf."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.edge.guard import Watch, source_of
from ivr.trunks import pjsip
from ivr.trunks.model import Guard
from ivr.trunks.shape import json_schema
from ivr.trunks.status import registrations
from ivr.trunks.validate import load

REPO = Path(__file__).resolve().parent.parent.parent
EXAMPLE = REPO / "docs" / "examples" / "trunks.yaml"


def _load(tmp_path: Path, text: str):
    path = tmp_path / "trunks.yaml"
    path.write_text(text)
    return load(path)


def test_the_example_validates_and_renders():
    config, errors = load(EXAMPLE)
    assert errors == [] and config is not None
    text = pjsip.render_trunks(config, "127.0.0.1", 5060, {"IVR_CARRIER_PASSWORD": "a;b"})
    assert "password = a\\;b" in text  # ';' would start a comment
    assert "media_encryption = sdes" in text and "verify_server = yes" in text
    assert "[clinician-gateway]" in text and "[fax-trunk]" in text
    assert "t38_udptl = yes" in text and "line = yes" in text
    # The dialplan's SendFAX may switch to T.38 only on a T.38 fax trunk.
    assert "set_var = IVR_FAX_T38=1" in text.split("[fax-trunk]")[1]


BASE = """trunks:
  - name: carrier
    host: sip.example.net
    inbound: {match: [198.51.100.0/24]}
roles:
  clinicians: carrier
"""


@pytest.mark.parametrize("change, where, words", [
    (("sip.example.net", "sip example;net"), (3, 11), "trunks[0].host"),
    (("198.51.100.0/24", "198.51.100.0/99"), (4, 23), "not an address or network"),
    (("clinicians: carrier", "clinicians: other"), (6, 15), "no trunk named 'other'"),
    (("    inbound", "    transport: udp\n    media_encryption: sdes\n    inbound"), (5, 23),
     "only over TLS"),
    (("    inbound", "    password: hunter2\n    inbound"), (4, 5), "unknown key 'password'"),
    (("    inbound", "    transport: tls\n    inbound"), (1, 1), "no tls section"),
    (("    inbound: {match: [198.51.100.0/24]}", "    inbound: {register: true}"), (2, 5),
     "needs credentials"),
    (("  - name: carrier", "  - name: clinician-gateway"), (2, 5), "is taken"),
])
def test_errors_name_file_line_column_and_key(tmp_path, change, where, words):
    config, errors = _load(tmp_path, BASE.replace(*change))
    assert config is None
    text = "\n".join(str(e) for e in errors)
    assert words in text, text
    assert any((e.line, e.column) == where for e in errors), text
    assert all(e.file.endswith("trunks.yaml") for e in errors)


def test_yaml_errors_and_limits_are_located(tmp_path):
    _config, errors = _load(tmp_path, "trunks: [\n")
    assert errors and errors[0].line >= 1 and "YAML" in errors[0].message
    _config, errors = _load(tmp_path, BASE + "x: " + "[" * 200 + "]" * 200 + "\n")
    assert errors


def test_a_missing_password_is_named_not_shown(tmp_path):
    text = BASE.replace("    inbound", "    auth: {username: acct, password_env: NOPE_PW}\n"
                        "    inbound")
    config, errors = _load(tmp_path, text)
    assert errors == [] and config is not None
    with pytest.raises(pjsip.TrunkRenderError, match="NOPE_PW"):
        pjsip.render_trunks(config, "127.0.0.1", 5060, {})
    with pytest.raises(pjsip.TrunkRenderError, match="printable"):
        pjsip.render_trunks(config, "127.0.0.1", 5060, {"NOPE_PW": "a b\nc"})
    out = subprocess.run([sys.executable, "-m", "ivr.cli", "trunks", "check",
                          str(tmp_path / "trunks.yaml"), "--json"], capture_output=True,
                         text=True, env={"PATH": "/usr/bin", "NOPE_PW": "s3cret-value"})
    doc = json.loads(out.stdout)
    assert out.returncode == 0 and doc["ok"] and doc["trunks"][0]["password_found"]
    assert "s3cret-value" not in out.stdout + out.stderr


def test_the_schema_is_a_json_schema_of_the_same_keys():
    schema = json_schema()
    trunk = schema["properties"]["trunks"]["items"]
    assert trunk["additionalProperties"] is False and '"password"' not in json.dumps(schema)
    assert set(trunk["required"]) == {"name", "host", "inbound"}


def test_registration_states_are_parsed():
    out = ("\n <Registration/ServerURI..> <Auth..> <Status.......>\n=====\n"
           " carrier-reg/sip:127.0.0.8:28005;transport=tls  carrier-auth  Registered  "
           "(exp. 87s)\n other-reg/sip:x:5060  other-auth  Rejected\n")
    assert registrations(out) == {"carrier": {"state": "Registered", "expires_in": 87},
                                  "other": {"state": "Rejected", "expires_in": None}}


def test_the_guard_bans_after_failures_or_a_flood_but_never_a_carrier():
    watch = Watch(Guard(failures=3, requests=5, window_seconds=10), trusted=["198.51.100.0/24"])
    assert [watch.observe("InvalidAccountID", "203.0.113.9", t) for t in (0, 1, 2)] == \
        [None, None, "InvalidAccountID"]
    assert [watch.observe("ChallengeSent", "203.0.113.8", t) for t in range(5)][-1] == "flood"
    assert watch.observe("InvalidAccountID", "203.0.113.7", 0) is None
    assert watch.observe("InvalidAccountID", "203.0.113.7", 20) is None  # window passed
    assert all(watch.observe("InvalidPassword", "198.51.100.7", t) is None for t in range(9))
    assert source_of({"RemoteAddress": "IPV4/UDP/203.0.113.9/5060"}) == "203.0.113.9"
    assert source_of({"RemoteAddress": "garbage"}) is None


def test_an_audio_fax_trunk_does_not_switch_to_t38(tmp_path):
    config, errors = _load(tmp_path, BASE.replace("roles:\n", "    fax: g711\nroles:\n")
                           + "  fax: carrier\n")
    assert errors == [] and config is not None
    fax = pjsip.render_trunks(config, "127.0.0.1", 5060, {}).split("[fax-trunk]")[1]
    assert "t38_udptl = no" in fax and "IVR_FAX_T38" not in fax
