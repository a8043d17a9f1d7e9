"""The dialplan as Asterisk loaded it: every contract name is used, nothing failed to
load, and the trunk's context reaches only the controller and the fallback."""

from __future__ import annotations

import re

import pytest

from ivr import contract

pytestmark = pytest.mark.pbx


def _rendered(stack) -> str:
    return (stack.pbx.host_dir / "etc" / "extensions.conf").read_text()


def test_every_contract_name_is_in_the_dialplan(stack):
    text = _rendered(stack)
    names = [contract.SENTINEL, contract.RESULT_DONE, contract.VAR_DID,
             contract.VAR_FORWARDED_FROM, contract.VAR_CALL_ID, contract.VAR_FALLBACK_REASON,
             contract.VAR_STAGE, contract.DIR_FALLBACK, contract.FALLBACK_DEFAULT_KEY,
             contract.DIR_STAMPS, contract.CTX_INBOUND, contract.CTX_FALLBACK,
             contract.CTX_HANGUP, contract.CTX_SCREEN, contract.CTX_GATEWAY_IN,
             contract.ENDPOINT_GATEWAY, contract.ROUTE_INBOUND, contract.SPOOL_FALLBACK_DIR,
             contract.RESULT_BRIDGE, contract.RESULT_ACCEPTED, contract.VAR_BRIDGE_TO,
             contract.VAR_LEG, contract.CTX_CLINICIAN, contract.ROUTE_SCREEN]
    names += [v for k, v in vars(contract).items() if k.startswith(("EV_", "STAGE_"))]
    missing = [n for n in names if n not in text]
    assert not missing


def test_stamp_fields_match_the_hangup_handler(stack):
    line = next(text for text in _rendered(stack).splitlines()
                if f"/{contract.DIR_STAMPS}/${{UNIQUEID}})=" in text)
    value = line.split(")=", 1)[1]
    assert value.rstrip(")").count("|") == len(contract.STAMP_FIELDS) - 1


def test_asterisk_loaded_the_dialplan_without_errors(stack):
    shown = stack.pbx.cli("dialplan show")
    for ctx in (contract.CTX_INBOUND, "ivr-call", contract.CTX_FALLBACK, contract.CTX_HANGUP,
                contract.CTX_SCREEN, contract.CTX_GATEWAY_IN, contract.CTX_CLINICIAN):
        assert f"'{ctx}'" in shown
    log = stack.pbx.log_file.read_text(errors="replace")
    boot = log.split("modules will be loaded")[-1]
    errors = [line for line in boot.splitlines()
              if "ERROR" in line or "pbx_config" in line and "WARN" in line]
    assert not errors


def test_trunk_context_reaches_only_controller_and_fallback(stack):
    """No Dial in the inbound contexts; the only Dial is the fallback's, to the gateway,
    with a number that went through FILTER()."""
    text = _rendered(stack)
    contexts = dict(re.findall(r"^\[([\w-]+)\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S))
    for name in (contract.CTX_INBOUND, "ivr-call"):
        assert "Dial(" not in contexts[name]
        assert "Goto(" in contexts[name]
        targets = set(re.findall(r"Goto\(([\w-]+),", contexts[name]))
        assert targets <= {"ivr-call", contract.CTX_FALLBACK}
    dials = re.findall(r"Dial\(([^)]*)\)", text)
    assert dials and all(d.startswith(f"PJSIP/${{NUM}}@{contract.ENDPOINT_GATEWAY}")
                         for d in dials)
    assert "Set(NUM=${FILTER(0-9+," in contexts[contract.CTX_FALLBACK]


def test_no_anonymous_endpoint_and_loopback_listeners(stack):
    endpoints = stack.pbx.cli("pjsip show endpoints")
    assert "anonymous" not in endpoints
    pjsip = (stack.pbx.host_dir / "etc" / "pjsip.conf").read_text()
    manager = (stack.pbx.host_dir / "etc" / "manager.conf").read_text()
    assert f"bind = 127.0.0.1:{stack.settings.sip_port}" in pjsip
    assert "bindaddr = 127.0.0.1" in manager
    assert "deny = 0.0.0.0/0.0.0.0" in manager


def test_clinician_context_dials_nothing_itself(stack):
    """A clinician's leg reaches only the controller: no Dial, no Goto out of it. (The
    controller's EXEC Dial on it uses numbers that passed ivr.oncall.dialer's gate.)"""
    text = _rendered(stack)
    contexts = dict(re.findall(r"^\[([\w-]+)\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S))
    body = contexts[contract.CTX_CLINICIAN]
    assert "Dial(" not in body and "Goto(" not in body
    assert "Set(IVR_LEG=${FILTER(0-9a-f," in body
    # The bridge target is checked whole before Bridge() sees it.
    assert 'REGEX("^PJSIP/clinician-gateway-[0-9a-f]+$" ${IVR_BRIDGE_TO})' in \
        contexts["ivr-call"]
