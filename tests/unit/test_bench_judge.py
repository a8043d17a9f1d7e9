"""How bench_callers judges a phase from its callers' reports and the PBX's AMI events:
a shed call counts as served only when the dialplan's intake finished with the caller
there, whatever its caller (scripted for the controller's questions) reported."""

from __future__ import annotations

from typing import Any

from tests.perf.bench_callers import Phase, clean, full, judge
from tests.perf.bench_capacity import CONTROLLER


def _call(uid: str, name: str, *extra: dict[str, str]) -> list[dict[str, str]]:
    return [{"Uniqueid": uid, "UserEvent": "IvrInbound", "CallerIDName": name,
             "Timestamp": "1.0"}, *({"Uniqueid": uid, "Timestamp": "2.0", **e}
                                   for e in extra)]


def _report(name: str, ok: bool, error: str | None = None) -> dict[str, Any]:
    return {"ok": ok, "error": error, "name": name, "events": []}


SHED = {"UserEvent": "IvrControllerReturned", "Result": "shed"}
TIMEOUT = {"UserEvent": "IvrControllerTimeout"}
RECORDED = {"UserEvent": "IvrFallbackRecorded", "Status": "DTMF"}
ANSWERED = {"UserEvent": "IvrFallbackDialResult", "DialStatus": "ANSWER"}


def test_completed_shed_served_and_failed_calls_are_told_apart() -> None:
    events = [*_call("1", "T a0c0", {"UserEvent": "IvrControllerReturned",
                                     "Result": "done"}),
              *_call("2", "T a0c1", SHED, RECORDED),
              *_call("3", "T a1c0", TIMEOUT, ANSWERED),
              *_call("4", "T a1c1", SHED)]  # the caller hung up during the intake
    reports = [_report("T a0c0", True),
               _report("T a0c1", False, "the call ended while waiting (step 4)"),
               _report("T a1c0", False, "the call ended while waiting (step 6)"),
               _report("T a1c1", True)]
    phase = Phase(CONTROLLER, "burst 4", [0.0] * 4)
    judge(phase, events, reports)
    assert (phase.ok, phase.served, phase.shed) == (1, 2, 3)
    assert phase.failed == {"shed, the dialplan intake did not finish": 1}
    assert not clean(phase) and not full(phase)


def test_a_report_without_a_name_counts_as_it_says() -> None:
    phase = Phase(CONTROLLER, "burst 2", [0.0, 0.0])
    judge(phase, _call("1", "Test Caller", SHED),
          [{"ok": True, "error": None, "events": []},
           {"ok": False, "error": "no answer (408)", "events": []}])
    assert (phase.ok, phase.served, phase.shed) == (1, 0, 1)
    assert phase.failed == {"no answer": 1}


def test_a_phase_of_served_and_completed_calls_is_clean_but_not_full() -> None:
    phase = Phase(CONTROLLER, "burst 2", [0.0, 0.0])
    judge(phase, [*_call("1", "a", SHED, RECORDED)],
          [_report("a", False, "ended"), _report("b", True)])
    assert clean(phase) and not full(phase)
