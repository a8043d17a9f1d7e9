"""Steps that only wait (Listen, Pause, Cue, AwaitEnd): when each is over, for any
caller that runs CallPlans (ivr.caller.agent's pjsua2 Runner, tests/perf/swarm.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.caller.hearing import Hearing
from ivr.caller.plan import AwaitEnd, Cue, Hangup, Listen, Pause, Step


@dataclass(frozen=True)
class Over:
    """The step is over: log `event` with `detail` (if any), then start the next step."""

    event: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def step_name(steps: list[Step], index: int) -> str:
    return "end" if index >= len(steps) else f"{index + 1}:{type(steps[index]).__name__}"


def waiting(step: Step, name: Callable[[], str], elapsed: float,
            hearing: Hearing) -> Over | str | None:
    """None while `step` (one of the waiting kinds) still waits; Over when it is done; a
    string saying why the call failed when it waited too long (`name()`: the step's
    name for it, made only then: this runs on every tick of every call)."""
    if isinstance(step, Listen):
        voiced = hearing.turn()
        if voiced is not None:
            return Over("heard", {"voiced_ms": voiced})
        if elapsed > step.timeout_s:
            end = "beep" if step.tone else "wait"
            return (f"step {name()}: the service did not speak and then {end} within "
                    f"{step.timeout_s:.0f} s (heard {hearing.voiced_ms} ms of voice, quiet "
                    f"for {hearing.quiet_ms} ms)")
    elif isinstance(step, Pause):
        if elapsed * 1000 >= step.ms:
            return Over()
    elif isinstance(step, Cue):
        if Path(step.path).exists():
            hearing.mark()  # what was heard before the cue is not the answer
            return Over("cued", {"cue": Path(step.path).name})
        if elapsed > step.timeout_s:
            return f"step {name()}: no cue {Path(step.path).name} within {step.timeout_s:.0f} s"
    elif isinstance(step, AwaitEnd) and elapsed > step.timeout_s:
        return (f"step {name()}: the service did not end the call within "
                f"{step.timeout_s:.0f} s")
    return None


def end_verdict(steps: list[Step], index: int, up: bool, sip_status: int | None,
                ended_by: str) -> tuple[bool, str | None]:
    """(ok, error) for a call that ended at step `index`: ok if it was waiting for the
    end (or hanging up) then."""
    if not up:
        return False, f"not answered: SIP {sip_status}"
    if index >= len(steps) or isinstance(steps[index], AwaitEnd | Hangup):
        return True, None
    return False, f"the call ended during step {step_name(steps, index)} ({ended_by})"


def follow(over: Over | str | None, fail: Callable[[str], None],
           log: Callable[..., None], advance: Callable[[], None]) -> None:
    """Act on `waiting`'s answer: fail the call, or log and start the next step."""
    if isinstance(over, str):
        fail(over)
    elif over is not None:
        if over.event:
            log(over.event, **over.detail)
        advance()


def begin(steps: list[Step], index: int, hearing: Hearing) -> Step:
    """The step at `index`, started if it is a Listen; past the last step, AwaitEnd
    (all done with the call up: the service ends it)."""
    if index >= len(steps):
        steps.append(AwaitEnd())
    step = steps[index]
    if isinstance(step, Listen):
        hearing.listen(step.quiet_ms, step.min_voice_ms, step.tone, step.tone_or_quiet_ms)
    return step
