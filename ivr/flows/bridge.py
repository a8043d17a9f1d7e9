"""The caller's side of reaching the on-call: hold music, escalation, bridge or call-back.

Urgent (and emergency-then-connect, and overflow intake_then_bridge) calls come here
after the intake. The chain is rung one ring at a time through the dialler (a ring is
one person, or several at once for a `together` step: the first to press 1 takes the
call); a ring where nobody answers, or all are busy, decline or say nothing, moves on to
the next, with a word to the caller in between. A clinician who presses 1 is bridged by the dialplan
(RESULT_BRIDGE). When the chain or the caller's maximum wait runs out, the caller is
told when to expect a call and the message goes to the call-back scheduler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from ivr import contract
from ivr.agi.protocol import AgiError, AgiHangup
from ivr.db.kinds import LegStatus
from ivr.db.models import (
    LEG_ACCEPTED,
    LEG_CALLER_GONE,
    LEG_LIVE,
    LEG_NO_ANSWER,
    LEG_TAKEN_BY_OTHER,
    OUTCOME_CONNECTED,
)
from ivr.flows.runner import Outcome
from ivr.flows.session import Session
from ivr.flows.speech import play, say_time
from ivr.oncall import callbacks
from ivr.oncall.dialer import Leg, RingClaim, new_leg_id, utc_now
from ivr.records import calls
from ivr.rules.oncall import DialStep, dial_list, rings

log = logging.getLogger(__name__)

SCREEN_MAX_SECONDS = 75  # an answered leg has this long to accept or pass
RING_MARGIN_SECONDS = 10  # after the ring time, a leg with no news is given up
POLL_SECONDS = 0.25


def live_chain(s: Session, overflow: bool) -> tuple[DialStep, ...]:
    """Who is rung for this call: the overflow desk when the rules name one, else on-call."""
    practice = s.practice
    assert practice is not None
    if overflow and practice.overflow.bridge_to:
        return tuple(DialStep("", "front desk", "desk", number,
                              practice.overflow.ring_seconds, 1, index, ring=index)
                     for index, number in enumerate(practice.overflow.bridge_to))
    return dial_list(practice, utc_now())


async def _music(s: Session, on: bool) -> None:
    try:
        await s.channel.command("SET MUSIC", "on" if on else "off", "default")
    except AgiHangup:
        raise
    except AgiError as exc:  # no music is no reason to drop the caller
        log.warning("call %s: hold music %s failed (%s)", s.call_id, on,
                    type(exc).__name__)


async def connect(s: Session, fallback_reason: str, overflow: bool = False,
                  announce: Callable[[], Awaitable[None]] | None = None) -> Outcome:
    """Ring the chain, a ring at a time, until someone accepts; else the call-back promise.

    `announce` plays "we are connecting you": while the first phones already ring, so the
    caller reaches a clinician a prompt's length sooner.
    """
    # The clinician's screening reads the intake from the record: committed before a leg.
    await s.settle()
    services = s.services
    dialer = getattr(services, "dialer", None)
    practice = s.practice
    assert practice is not None
    steps = live_chain(s, overflow)
    if dialer is None or not services.ami.connected or not steps:
        # The controller cannot place legs: the dialplan's fallback can (AstDB numbers).
        await calls.add_event(s.db, s.call_id, "oncall.unavailable",
                              reason="no-ami" if steps else "no-chain")
        if announce is not None:
            await announce()
        return Outcome(contract.RESULT_FALLBACK, fallback_reason)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + practice.on_call.max_caller_wait_seconds
    s.step = "oncall.search"
    legs: list[Leg] = []
    try:
        for index, ring in enumerate(rings(steps)):
            if deadline - loop.time() < 2:
                break
            if index > 0:
                await _music(s, False)
                await play(s.channel, [s.flow("still_searching")])
            legs = await _place(s, ring)
            if index == 0 and announce is not None:
                await announce()  # the first ring's phones ring meanwhile
            await _music(s, True)
            if not legs:
                continue
            accepted = await _wait(s, legs, deadline)
            if accepted is not None and accepted.channel:
                await _music(s, False)
                await _stand_down(s, [leg for leg in legs if leg is not accepted])
                await s.channel.set_variable(contract.VAR_BRIDGE_TO, accepted.channel)
                await s.channel.set_variable(contract.VAR_LEG, accepted.id)
                await dialer.record(accepted, bridged_at=utc_now())
                await calls.update_call(s.db, s.call_id, oncall_outcome=OUTCOME_CONNECTED,
                                        oncall_clinician=accepted.clinician_id)
                log.info("call %s: clinician accepted; bridging", s.call_id)
                return Outcome(contract.RESULT_BRIDGE)
            legs = []
    except AgiHangup:
        await _caller_left(s, legs)
        raise
    await _music(s, False)
    return await exhausted(s)


async def _place(s: Session, ring: tuple[DialStep, ...]) -> list[Leg]:
    """Originate every leg of one ring (rows first); the legs that went out."""
    dialer = s.services.dialer
    practice = s.practice
    assert practice is not None
    claim = RingClaim() if len(ring) > 1 else None
    placed = []
    for step in ring:
        leg = Leg(id=new_leg_id(), call_id=s.call_id, kind=LEG_LIVE, practice=practice,
                  clinician_id=step.clinician_id or None, number=step.number,
                  ring_seconds=step.ring_seconds, ring=claim)
        await dialer.insert(leg, role=step.role, step_index=step.step_index)
        await calls.add_event(s.db, s.call_id, "oncall.leg", leg=leg.id,
                              clinician=step.clinician_id or None, step=step.step_index,
                              attempt=step.attempt, ring=step.ring)
        if await dialer.originate(leg):
            placed.append(leg)
    return placed


async def _wait(s: Session, legs: list[Leg], deadline: float) -> Leg | None:
    """The leg that accepted, or None once every leg of the ring has its result.

    The caller's hang-up raises AgiHangup; each leg has its own ring and screening
    limits, and the caller's maximum wait stops the legs still ringing.
    """
    loop = asyncio.get_running_loop()
    dialer = s.services.dialer
    give_up = {leg.id: loop.time() + leg.ring_seconds + RING_MARGIN_SECONDS for leg in legs}
    hangup = asyncio.ensure_future(s.channel.hangup_event.wait())
    try:
        while True:
            accepted = next((leg for leg in legs if leg.result.done()
                             and leg.result.result() == LEG_ACCEPTED), None)
            if accepted is not None or all(leg.result.done() for leg in legs):
                for leg in [accepted] if accepted else legs:
                    await calls.add_event(s.db, s.call_id, "oncall.leg.result", leg=leg.id,
                                          result=leg.result.result())
                return accepted
            if s.channel.hung_up:
                raise AgiHangup("caller hung up while the on-call was rung")
            now = loop.time()
            for leg in legs:
                if leg.result.done():
                    continue
                if leg.answered.is_set():
                    if now > (leg.answered_mono or now) + SCREEN_MAX_SECONDS:
                        await dialer.hangup(leg)
                        await dialer.finish(leg, LegStatus.SCREEN_TIMEOUT, detail="screen-too-long")
                elif now > deadline or now > give_up[leg.id]:
                    # The caller's maximum wait (or a leg with no news): stop ringing it.
                    await dialer.finish(leg, LEG_NO_ANSWER,
                                        detail="caller-wait-limit" if now > deadline
                                        else "no-news")
                    await dialer.hangup(leg)
            pending = {leg.result for leg in legs if not leg.result.done()}
            await asyncio.wait(pending | {hangup}, timeout=POLL_SECONDS,
                               return_when=asyncio.FIRST_COMPLETED)
    finally:
        hangup.cancel()


async def _stand_down(s: Session, others: list[Leg]) -> None:
    """Legs rung with the one that accepted: stop the ringing ones; the screening ones
    hear that a colleague took the call (their screen route sees `taken_elsewhere`)."""
    dialer = s.services.dialer
    for leg in others:
        if leg.result.done():
            continue
        if not leg.answered.is_set():
            await dialer.finish(leg, LEG_TAKEN_BY_OTHER, detail="taken-by-other")
            await dialer.hangup(leg)


async def _caller_left(s: Session, legs: list[Leg]) -> None:
    """The caller hung up during the search: tell the legs out, then queue the call-back."""
    dialer = s.services.dialer
    try:
        for leg in legs:
            if not leg.result.done():
                leg.caller_gone = True
                if not leg.answered.is_set():
                    await dialer.finish(leg, LEG_CALLER_GONE, detail="caller-hung-up")
                    await dialer.hangup(leg)
                # An answered leg is screening: the screen route tells the clinician.
            elif leg.result.result() == LEG_ACCEPTED:
                # Accepted, but the caller went before the bridge: free the parked clinician.
                leg.caller_gone = True
                await dialer.hangup(leg)
        await queue_callback(s, first_in_interval=True)
    except Exception as exc:  # the runner still records the hang-up
        log.warning("call %s: could not queue the call-back after the hang-up (%s)",
                    s.call_id, type(exc).__name__)


async def queue_callback(s: Session, first_in_interval: bool) -> bool:
    """A pending call-back for this call, if the rules want call-backs."""
    practice = s.practice
    assert practice is not None
    oc = practice.on_call
    if oc.when_exhausted.action != "callback_until_acknowledged":
        return False
    now = utc_now()
    interval = oc.when_exhausted.renotify_minutes * s.services.settings.oncall_minute_seconds
    first = now + timedelta(seconds=interval if first_in_interval else 0)
    return await callbacks.create(s.db, callback_id=new_leg_id(), call_id=s.call_id,
                                  practice=practice, now=now, first_at=first,
                                  interval_seconds=interval,
                                  promised=callbacks.promised_by(practice, now))


async def exhausted(s: Session) -> Outcome:
    """Nobody took the call live: say when to expect a call, then hand it to call-backs."""
    practice = s.practice
    assert practice is not None
    s.step = "oncall.exhausted"
    if await queue_callback(s, first_in_interval=True):
        promised = callbacks.promised_by(practice, utc_now())
        s.told.append(s.library_text("callback_eta") + " "
                      + promised.astimezone(practice.tz).strftime("%-I:%M %p") + ".")
        await play(s.channel, [s.flow("callback_eta"),
                               *say_time(promised, practice.timezone, utc_now(), s.language),
                               s.flow("goodbye")])
    else:
        s.told.append(s.library_text("message_taken"))
        await play(s.channel, [s.flow("message_taken")])
    await calls.add_event(s.db, s.call_id, "oncall.exhausted")
    return Outcome()
