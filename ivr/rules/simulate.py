"""Dry run of one call through the rules: route, state, prompts, triage and who is rung."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ivr.rules.decision import ROUTE_AFTER_HOURS, Route, decide
from ivr.rules.languages import choice_keys, choose
from ivr.rules.model import (
    BRIDGE_DISPOSITIONS,
    Disposition,
    Intake,
    Override,
    Practice,
    RuleSet,
    normalise_number,
)
from ivr.rules.oncall import DialStep, dial_list, max_attempts
from ivr.rules.prompts import DEFAULT_PROMPTS, OPERATOR_CLOSING_TEXT, OPERATOR_GREETING_TEXT, render
from ivr.rules.schedule import PracticeState
from ivr.rules.timeutil import fmt_local, human_time, require_aware
from ivr.texts import for_language

NO_INPUT_KEY = "."  # in a simulated key string: "the caller pressed nothing this time"


def _prompt(practice: Practice, pid: str, values: dict[str, str],
            language: str | None = None) -> dict[str, Any]:
    p = practice.prompts_in(language)[pid]
    return {"id": pid, "text": render(p.text, values), "file": p.file}


def language_choice(practice: Practice, keys: str) -> tuple[str, dict[str, Any] | None, str]:
    """The caller's language as the live call picks it (ivr.rules.languages): with
    several offered, the first key chooses. (language, trace or None, keys left)."""
    if len(practice.offered) < 2:
        return practice.language, None, keys
    key = keys[0] if keys and keys[0] != NO_INPUT_KEY else None
    language, how = choose(practice.offered, key)
    return language, {"key": key, "language": language, "result": how}, keys[1:]


def run_menu(practice: Practice, keys: str) -> tuple[str, list[dict[str, Any]]]:
    """Apply the triage menu to a key string: (disposition, trace of attempts).

    One key per attempt; '.' or running out of keys is "no input". A key that is not
    in the menu is "invalid". After 1 + retries failed attempts the menu's default applies.
    """
    menu = practice.menu
    trace: list[dict[str, Any]] = []
    pos = 0
    for attempt in range(1, menu.retries + 2):
        key = keys[pos] if pos < len(keys) else None
        pos += 1
        if key is None or key == NO_INPUT_KEY:
            trace.append({"attempt": attempt, "key": None, "result": "no_input"})
        elif key in menu.options:
            trace.append({"attempt": attempt, "key": key, "result": menu.options[key]})
            return menu.options[key], trace
        else:
            trace.append({"attempt": attempt, "key": key, "result": "invalid"})
    trace.append({"attempt": None, "key": None, "result": f"default: {menu.default}"})
    return menu.default, trace


def _dial_json(steps: tuple[DialStep, ...] | list[DialStep]) -> list[dict[str, Any]]:
    return [s.to_json() for s in steps]


def dial_lines(entries: list[dict[str, Any]]) -> list[str]:
    """One line per dial-list entry (JSON form), '&' marking one rung with the line above."""
    lines, previous = [], None
    for d in entries:
        who = f"{d['name']} ({d['role']})" if d["role"] else d["name"]
        label = "  &" if d["ring"] is not None and d["ring"] == previous else \
            f"{d['step']}.{d['attempt']}"
        previous = d["ring"]
        lines.append(f"{label}  {d['number']}  {who}  ring {d['ring_seconds']}s")
    return lines


def _state_json(practice: Practice, st: PracticeState) -> dict[str, Any]:
    return {
        "kind": st.kind,
        "is_open": st.is_open,
        "reason": st.reason,
        "next_change": fmt_local(st.next_change, practice.tz) if st.next_change else None,
    }


def simulate(rules: RuleSet, to: str, forwarded_from: str | None, caller: str | None,
             at: datetime, keys: str = "", manual_overrides: tuple[Override, ...] = ()
             ) -> dict[str, Any]:
    """What would happen to a call to `to` at instant `at` if the caller pressed `keys`."""
    at = require_aware(at, "at")
    decision = decide(rules, to, forwarded_from, at, manual_overrides)  # as the live call
    practice = decision.practice
    result: dict[str, Any] = {
        "to": to, "forwarded_from": forwarded_from, "caller": caller, "at": at.isoformat(),
        "keys": keys, "operator_flag": decision.operator_flag,
    }
    if practice is None:
        return _operator_intake(result, normalise_number(caller, rules.regions))

    tz = practice.tz
    st = decision.state
    assert st is not None
    route = decision.route
    reopen = decision.reopens_at
    language, choice, keys_left = language_choice(practice, keys)
    values = {
        "practice": practice.name,
        "callback_time": human_time(reopen, tz, at, language) if reopen
        else for_language(language).FLOW["reopening_unknown"],
        "closing_time": human_time(st.next_change, tz, at, language) if st.next_change
        else "closing time",
    }
    prompts = [] if choice is None else [
        {"id": "language_choice", "text": " ".join(
            render(for_language(tag).FLOW["language_choice"], {"key": key})
            for key, tag in choice_keys(practice.offered).items()), "file": None}]
    prompts += [_prompt(practice, "greeting" if route == ROUTE_AFTER_HOURS
                        else "overflow_greeting", values, language),
                _prompt(practice, "emergency_notice", values, language)]
    caller_e164 = normalise_number(caller, (practice.country,))  # as the live call
    for fld in practice.intake.collect:
        if fld == "callback" and caller_e164 is None:
            prompts.append(_prompt(practice, "unknown_caller", values, language))
        prompts.append(_prompt(practice, INTAKE_PROMPTS[fld], values, language))

    disposition, trace = run_menu(practice, keys_left)
    prompts.append(_prompt(practice, "menu", values, language))
    for event in trace:
        if event["result"] in ("no_input", "invalid"):
            pid = "menu_no_input" if event["result"] == "no_input" else "menu_invalid"
            prompts.append(_prompt(practice, pid, values, language))
            if event["attempt"] <= practice.menu.retries:
                prompts.append(_prompt(practice, "menu", values, language))

    oncall_list = dial_list(practice, at)
    steps: list[dict[str, Any]]
    if route != ROUTE_AFTER_HOURS and practice.overflow.mode == "intake_then_bridge":
        # Open and overflowing: everyone goes to the office line after the intake;
        # urgent calls continue to the on-call chain if the office does not answer.
        desk = [{"step": "overflow", "attempt": 1, "ring": None, "clinician_id": None,
                 "name": "office", "role": None, "number": n,
                 "ring_seconds": practice.overflow.ring_seconds}
                for n in practice.overflow.bridge_to]
        steps = desk + (_dial_json(oncall_list) if disposition in BRIDGE_DISPOSITIONS or not desk
                        else [])
        outcome = "bridge"
    elif disposition in BRIDGE_DISPOSITIONS:
        steps, outcome = _dial_json(oncall_list), "bridge"
    else:
        steps, outcome = [], "message"

    if disposition == Disposition.EMERGENCY:
        prompts.append(_prompt(practice, "emergency_advice", values, language))
    if outcome == "bridge":
        prompts.append(_prompt(practice, "connecting", values, language))
        told = prompts[-1]["text"]
        if_no_answer = _prompt(practice, "no_answer", values, language)["text"]
    else:
        pid = "callback_promise" if route == ROUTE_AFTER_HOURS else "same_day_callback"
        prompts.append(_prompt(practice, pid, values, language))
        told = prompts[-1]["text"]
        if_no_answer = None

    oc = practice.on_call
    result.update(
        practice=practice.id,
        practice_name=practice.name,
        local_time=fmt_local(at, tz),
        state=_state_json(practice, st),
        route=route,
        language=language,
        language_choice=choice,
        next_opening=fmt_local(reopen, tz) if reopen else None,
        prompts=prompts,
        menu_trace=trace,
        disposition=disposition,
        outcome=outcome,
        caller_told=told,
        if_no_answer=if_no_answer,
        dial_list=steps,
        max_caller_wait_seconds=oc.max_caller_wait_seconds if outcome == "bridge" else None,
        when_exhausted={"action": oc.when_exhausted.action,
                        "renotify_minutes": oc.when_exhausted.renotify_minutes,
                        "attempts_per_person": oc.when_exhausted.attempts_per_person,
                        "max_attempts": max_attempts(practice, at)}
        if outcome == "bridge" else None,
    )
    return result


INTAKE_PROMPTS = {"callback": "ask_callback", "dob": "ask_dob", "name": "ask_name",
                  "reason": "ask_reason"}


def _operator_intake(result: dict[str, Any], caller_e164: str | None) -> dict[str, Any]:
    """A number no practice claims: the flow's generic greeting and intake, for an operator."""
    def default(pid: str) -> dict[str, Any]:
        return {"id": pid, "text": DEFAULT_PROMPTS[pid], "file": None}

    prompts = [{"id": "generic_greeting", "text": OPERATOR_GREETING_TEXT, "file": None},
               default("emergency_notice")]
    for fld in Intake().collect:
        if fld == "callback" and caller_e164 is None:
            prompts.append(default("unknown_caller"))
        prompts.append(default(INTAKE_PROMPTS[fld]))
    prompts.append({"id": "operator_closing", "text": OPERATOR_CLOSING_TEXT, "file": None})
    result.update(practice=None, route=Route.UNKNOWN, state=None, prompts=prompts,
                  disposition=None, outcome="operator_intake",
                  caller_told=OPERATOR_CLOSING_TEXT, dial_list=[], next_opening=None)
    return result


def format_text(res: dict[str, Any]) -> str:
    """The simulation as a short human-readable report."""
    lines = []
    if res["practice"] is None:
        lines.append(f"Call to {res['to']}: no practice uses this number (unknown_number).")
        lines.append("Prompts:")
        lines += [f"  - {p['id']}: {p['text']}" for p in res["prompts"]]
        lines.append(f"Outcome:    {res['outcome']} (the intake is flagged for an operator)")
        lines.append(f"Told:       {res['caller_told']}")
        return "\n".join(lines)
    st = res["state"]
    lines.append(f"Practice:   {res['practice_name']} ({res['practice']})")
    lines.append(f"Local time: {res['local_time']}")
    lines.append(f"State:      {st['kind']} ({st['reason']}); next change {st['next_change']}")
    lines.append(f"Route:      {res['route']}")
    lines.append("Prompts:")
    for p in res["prompts"]:
        src = f" [file {p['file']}]" if p["file"] else ""
        lines.append(f"  - {p['id']}{src}: {p['text']}")
    if res.get("language_choice"):
        lc = res["language_choice"]
        lines.append(f"Language:   key {lc['key']} -> {lc['language']} ({lc['result']})")
    keys = res["keys"] or "(none)"
    lines.append(f"Keys {keys} -> disposition: {res['disposition']}")
    for ev in res["menu_trace"]:
        lines.append(f"    attempt {ev['attempt']}: key {ev['key']} -> {ev['result']}")
    lines.append(f"Outcome:    {res['outcome']}")
    lines.append(f"Told:       {res['caller_told']}")
    if res["dial_list"]:
        lines.append("Dial list:")
        lines += ["  " + line for line in dial_lines(res["dial_list"])]
        lines.append(f"  caller waits at most {res['max_caller_wait_seconds']}s; then: "
                     f"{res['if_no_answer']}")
        we = res["when_exhausted"]
        lines.append(f"  if nobody answers: {we['action']} every {we['renotify_minutes']} min, "
                     f"{we['attempts_per_person']} call(s) per clinician, at most "
                     f"{we['max_attempts']} calls")
    return "\n".join(lines)
