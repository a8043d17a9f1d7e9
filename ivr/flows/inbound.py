"""Route `inbound`: every call from the trunk, step by step.

route and state (decide) -> [clinician line] -> [language choice] -> greeting ->
emergency notice -> intake -> triage -> action. A call from a clinician's own phone is
offered the clinician line first (ivr.flows.clinician_line); anything but the right PIN
goes on as a patient call.
Each step is written to the call's timeline as it happens; a hang-up at any step is
recorded with the step and keeps what was captured.
"""

from __future__ import annotations

import logging
import re

from ivr.agi.protocol import AgiError, AgiHangup
from ivr.db.models import SOURCE_CALLER_ID, SOURCE_CALLER_ID_UNVALIDATED
from ivr.flows import clinician_line, intake, language, redflag, triage
from ivr.flows.decide import ROUTE_AFTER_HOURS, decide, find_practice
from ivr.flows.runner import CallContext, Outcome
from ivr.flows.session import Lead, Session
from ivr.flows.speech import Item, play
from ivr.records import calls
from ivr.records.overrides import active_overrides
from ivr.rules.model import Clinician, Override, normalise_number

log = logging.getLogger(__name__)


async def handle(ctx: CallContext) -> Outcome:
    services = ctx.services
    rules = services.rules  # read once: the call keeps them
    channel = ctx.channel
    db = services.db
    # Read once by the runner when it created the call: digits and '+' only.
    dialled, forwarded, caller = ctx.dialled, ctx.forwarded_from, ctx.caller
    instant = services.clock()
    practice = find_practice(rules, dialled, forwarded)
    overrides: tuple[Override, ...] = ()
    if practice is not None:
        try:
            overrides = await active_overrides(db, practice.id, instant)
        except Exception as exc:  # the schedule alone still decides; never hold the caller
            log.warning("call %s: manual overrides unreadable (%s); deciding without them",
                        ctx.call_id, type(exc).__name__)
    decision = decide(rules, dialled, forwarded, instant, overrides)
    regions = (practice.country,) if practice is not None else \
        (rules.regions if rules is not None else ("US",))
    s = Session(channel, ctx.call_id, services, decision, instant, regions,
                normalise_number(caller[:32] or None, regions))
    state = decision.state
    await calls.update_call(
        db, ctx.call_id, practice_id=practice.id if practice else None, route=decision.route,
        rules_digest=rules.digest if rules is not None else None,
        state_kind=state.kind if state else None, state_reason=state.reason if state else None,
        operator_flag=decision.operator_flag, language=s.language)
    await calls.add_event(db, ctx.call_id, "route.decided", route=decision.route,
                          practice=practice.id if practice else None,
                          state=state.kind if state else None)
    log.info("call %s: route %s, practice %s", ctx.call_id, decision.route,
             practice.id if practice else "-")
    try:
        clinician = await _clinician(s)
        if clinician is not None:
            return await clinician_line.serve(s, clinician)
        return await _steps(s)
    except AgiHangup:
        await _settled(s)
        if s.step != clinician_line.STEP_LINE:  # a clinician's own call is no patient's
            await _abandoned(s, caller[:32])
        raise
    finally:
        await _settled(s)  # nothing written in the background outlives the call


async def _steps(s: Session) -> Outcome:
    # Before the first prompt, not between the notice and the first question, where a
    # round trip is a gap a caller's key can fall into.
    await intake.set_timeouts(s)
    await language.run(s)
    s.step = "greeting"
    s.event_soon("prompt.greeting")
    greeting: list[Item]
    if s.practice is None:
        greeting = [s.flow("generic_greeting")]
    else:
        greeting = s.prompt("greeting" if s.decision.route == ROUTE_AFTER_HOURS
                            else "overflow_greeting")
    # The greeting and the notice are played by the first question's own Read, so that
    # no key falls between them: a key during either starts the answer (a hang-up
    # during any of the three is recorded at that question). Played on their own (a
    # first question that is no Read), a key skips each.
    s.leads = [Lead(greeting, "greeting"),
               Lead(s.prompt("emergency_notice"), "emergency_notice",
                    "prompt.emergency_notice")]
    await intake.run(s)
    if s.practice is None:
        # No practice to triage for: the intake goes to an operator (flagged at routing).
        s.step = "operator_closing"
        s.told.append(s.library_text("operator_closing"))
        await play(s.channel, [s.flow("operator_closing")])
        _told(s)
        await s.settle()
        return Outcome()
    s.step = "triage"
    disposition = await triage.run_menu(s)
    s.soon(calls.update_call(s.db, s.call_id, disposition=disposition))
    disposition = await redflag.check(s, disposition)
    outcome = await triage.act(s, disposition)
    _told(s)
    s.event_soon("action", disposition=disposition, result=outcome.result,
                 reason=outcome.fallback_reason)
    await s.settle()  # a write that failed fails the call's flow, as before the sentinel
    return outcome


async def _clinician(s: Session) -> Clinician | None:
    """The clinician line's PIN check; a failure of it leaves a patient call unharmed."""
    try:
        return await clinician_line.identify(s)
    except AgiError:
        raise
    except Exception as exc:
        log.warning("call %s: clinician line check failed (%s); patient flow", s.call_id,
                    type(exc).__name__)
        return None


async def _settled(s: Session) -> None:
    """The background events are stored; a failure to write one is logged, never raised
    over the call's own outcome (the runner still records the call's end)."""
    try:
        await s.settle()
    except Exception as exc:
        log.warning("call %s: a timeline event was not written (%s)", s.call_id,
                    type(exc).__name__)


def _told(s: Session) -> None:
    s.soon(calls.update_call(s.db, s.call_id, caller_told=" ".join(s.told)))


# A caller ID kept although the phone-number library rejects it (a number it does not
# know yet, a test range): still the only lead to call back, so never dialled unconfirmed.
RAW_CALLER_ID = re.compile(r"\+?[0-9]{3,20}")


async def _abandoned(s: Session, raw_caller: str = "") -> None:
    """The caller hung up at `s.step`: say so, keep the caller ID as a callback number
    (validated, else in its raw form marked unvalidated)."""
    try:
        await calls.update_call(s.db, s.call_id, abandoned_step=s.step)
        if s.told:
            _told(s)
            await s.settle()
        lead, source = s.caller_e164, SOURCE_CALLER_ID
        if lead is None and RAW_CALLER_ID.fullmatch(raw_caller):
            lead, source = raw_caller, SOURCE_CALLER_ID_UNVALIDATED
        if lead and not await calls.has_intake(s.db, s.call_id, "callback"):
            await calls.save_intake(s.db, s.call_id, "callback", value=lead,
                                    source=source, confirmed=False, attempts=0)
        await calls.add_event(s.db, s.call_id, "call.abandoned", step=s.step)
    except Exception as exc:  # the runner still records the hang-up itself
        log.warning("call %s: could not record the abandoned step (%s)", s.call_id,
                    type(exc).__name__)
