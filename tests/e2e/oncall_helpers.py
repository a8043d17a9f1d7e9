"""Shared by the on-call e2e tests: test-only practices, the phones, the controller set-up.

Each scenario gets its own practice (own DID, own clinicians' numbers), so all of them
run at once against one bank of reacting phones on the gateway port (ivr.caller):
behaviour follows the dialled number, as with real phones. Practices are closed all
week (no hours), so every call is after hours whatever the time. Their key waits (8 s)
leave a caller that waits for 2 s of quiet (support.reacting.HEAR) time to answer on a
loaded machine. IVR_ONCALL_MINUTE_SECONDS=1 makes the rules' call-back minutes seconds.
"""

from __future__ import annotations

from pathlib import Path

from harness import wait_for

MINUTE_SECONDS = "1"
# The caller's wait (max_caller_wait_seconds) in tests whose caller must reach a
# clinician: on a loaded machine ringing and screening one clinician takes 45 s or more,
# so a wait of 30 s turned a bridge into a call-back promise.
BRIDGE_WAIT = 400


def practice_yaml(pid: str, did: str, clinicians: list[tuple[str, str, int]], *,
                  max_wait: int = 90, renotify: int = 2, collect: str = "[callback, name]",
                  pins: dict[str, str] | None = None,
                  rings: list[tuple[str, ...]] | None = None,
                  max_attempts: int | None = None) -> str:
    """A closed-all-week practice whose chain is `clinicians` (id, phone, ring seconds),
    one step each; `rings`: the steps as groups of ids instead (several: `together`);
    `max_attempts`: call-back attempts before giving up (else the rules' default)."""
    pins = pins or {}
    people = "\n".join(
        f'    - {{id: {cid}, name: Clinician {cid}, role: nurse, phone: "{phone}"'
        + (f', pin: "{pins[cid]}"' if cid in pins else "") + "}"
        for cid, phone, _ in clinicians)
    ring_of = {cid: ring for cid, _, ring in clinicians}
    steps = "\n".join(
        f"    - {{clinician: {ids[0]}, ring_seconds: {ring_of[ids[0]]}}}" if len(ids) == 1
        else f"    - {{together: [{', '.join(f'{{clinician: {c}}}' for c in ids)}], "
             f"ring_seconds: {ring_of[ids[0]]}}}"
        for ids in rings or [(cid,) for cid, _, _ in clinicians])
    limit = f"    max_attempts: {max_attempts}\n" if max_attempts else ""
    return f"""practice:
  id: {pid}
  name: Practice {pid}
  timezone: America/New_York
  country: US
  language: en-US
  dids: ["{did}"]
hours: {{}}
holidays:
  country: none
prompts:
  greeting: Hello.
  emergency_notice: Notice.
intake:
  collect: {collect}
  name_max_seconds: 6
  retries: 0
  input_timeout_seconds: 8
triage:
  keys: {{1: urgent, 4: routine}}
  retries: 0
  timeout_seconds: 8
  default: urgent
overflow:
  mode: intake_same_day_callback
on_call:
  clinicians:
{people}
  escalation:
{steps}
  when_exhausted:
    action: callback_until_acknowledged
    renotify_minutes: {renotify}
{limit}  max_caller_wait_seconds: {max_wait}
delivery:
  email: office@example.org
"""


def use_rules(stack, folder: Path, extra_env: dict[str, str] | None = None) -> None:
    """Restart the controller on these rules (and env); `restore` puts the suite's back."""
    stack.stop_controller()
    stack._saved_settings = getattr(stack, "_saved_settings", stack.settings)
    stack.settings = stack._saved_settings.with_overrides(rules_path=folder)
    stack.extra_env = {"IVR_ONCALL_MINUTE_SECONDS": MINUTE_SECONDS, **(extra_env or {})}
    stack.start_controller()
    wait_for(lambda: "AMI connected" in stack.controller_log().split("controller stopping")[-1],
             90, "the controller's AMI connection")


def restore(stack) -> None:
    from harness import drop_pending_callbacks

    stack.stop_controller()
    drop_pending_callbacks(stack)
    saved = getattr(stack, "_saved_settings", None)
    if saved is not None:
        stack.settings = saved
        del stack._saved_settings
    stack.extra_env = {}


def settle(stack) -> None:
    """After a scenario: no channel left in Asterisk, then the suite's rules back."""
    if stack.channels():
        stack.hangup_all()
    wait_for(lambda: stack.channels() == 0, 30, "no channels left in Asterisk")
    restore(stack)


def cli_json(stack, *args: str):
    import json

    return json.loads(stack.cli(*args, "--json"))


def call_of(stack, did: str) -> dict | None:
    calls = [c for c in stack.calls() if c["dialled"] == did]
    return stack.show(calls[0]["id"]) if calls else None


def gateway_channels(stack, after: int = 0) -> list[dict]:
    """Newchannel events of channels to the clinician gateway (every leg, every Dial)."""
    with stack.recorder._lock:
        events = list(stack.recorder.events[after:])
    return [e for e in events if e.get("Event") == "Newchannel"
            and e.get("Channel", "").startswith("PJSIP/clinician-gateway-")]


def dial_begins(stack, number_digits: str, after: int = 0) -> list[dict]:
    with stack.recorder._lock:
        events = list(stack.recorder.events[after:])
    return [e for e in events if e.get("Event") == "DialBegin"
            and e.get("DialString", "").startswith(number_digits + "@")]
