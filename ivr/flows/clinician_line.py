"""The clinician line: a clinician calling from their own phone keys the PIN from the rules,
hears the practice's pending call-backs, acknowledges them and may call the patient back.

Only a caller ID equal to the phone of a clinician of the practice called, who has a PIN,
is offered the PIN prompt. No key, three wrong PINs or a lockout (LOCKOUT_FAILURES wrong
PINs within LOCKOUT_WINDOW, counted from the timelines in the database, so it holds across
restarts and controllers) all go on to the patient flow: a family member may use that
phone, and a possible patient is never hung up on. Nothing here logs or stores the PIN,
numbers, names or what a patient said; the timeline gets clinician and call ids only.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from ivr.db.engine import Database
from ivr.db.models import CB_PENDING, Call, CallEvent, OncallCallback
from ivr.flows.intake import read_keys
from ivr.flows.runner import Outcome
from ivr.flows.screen import KEY_WAIT_MS, message_items, offer_patient_call
from ivr.flows.session import Session
from ivr.flows.speech import Item, SayNumber, ask, play, say_time
from ivr.oncall import callbacks
from ivr.oncall.dialer import caller_id, utc_now
from ivr.records import calls
from ivr.rules.decision import Route
from ivr.rules.model import Clinician, Practice

log = logging.getLogger(__name__)

ROUTE_CLINICIAN_LINE = Route.CLINICIAN_LINE  # the call's route once the PIN is right
VIA = "clinician-line"  # acknowledged_via of the call-backs taken here
STEP_PIN = "clinician_pin"
STEP_LINE = "clinician_line"
DIGITS = "0123456789"
FIRST_KEY_MS = 4000  # after the offer: no key is a patient (or family) on that phone
PIN_KEY_MS = 5000  # between the PIN's digits
MAX_PIN_DIGITS = 12
PIN_TRIES = 3  # per call
LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = timedelta(minutes=15)
# PIN tries happen in a call's first minutes, so only calls started this long before the
# window can hold a failure in it (keeps the count on the indexed calls.started_at).
PIN_PHASE_MAX = timedelta(minutes=10)
MENU_ROUNDS = 6  # keys and silences on one message before moving on
SILENT_ROUNDS = 2  # the menu unanswered this many times: the clinician is gone
EV_PIN_FAILED = "clinician.pin_failed"


# --- pure --------------------------------------------------------------------------------

def pin_holders(practice: Practice | None, caller: str | None) -> tuple[Clinician, ...]:
    """Clinicians of this practice with a PIN whose phone is the caller's (E.164) number."""
    if practice is None or not caller:
        return ()
    return tuple(c for c in practice.on_call.clinicians.values()
                 if c.pin and c.phone == caller)


def who_keyed(holders: tuple[Clinician, ...], keyed: str) -> Clinician | None:
    """The holder whose PIN was keyed; every PIN is compared (constant time, no early exit)."""
    found = None
    for clinician in holders:
        if hmac.compare_digest(keyed.encode(), (clinician.pin or "").encode()) and found is None:
            found = clinician
    return found


def tries_left(failures: int) -> int:
    """PIN tries this call may have: never past the lockout threshold."""
    return max(0, min(PIN_TRIES, LOCKOUT_FAILURES - failures))


def failures_by_clinician(details: list[str], ids: set[str]) -> dict[str, int]:
    """Count `clinician.pin_failed` timeline details per clinician id."""
    out = dict.fromkeys(ids, 0)
    for raw in details:
        try:
            named = json.loads(raw).get("clinicians", [])
        except (ValueError, AttributeError):
            continue
        for cid in named if isinstance(named, list) else ():
            if cid in out:
                out[cid] += 1
    return out


# --- the database ------------------------------------------------------------------------

async def recent_failures(db: Database, practice_id: str, ids: set[str],
                          now: datetime) -> dict[str, int]:
    """Wrong PINs per clinician of the practice within the lockout window before `now`."""
    since = now - LOCKOUT_WINDOW
    async with db.session() as s:
        details = (await s.scalars(
            select(CallEvent.detail).join(Call, Call.id == CallEvent.call_id)
            .where(Call.practice_id == practice_id,
                   Call.started_at >= since - PIN_PHASE_MAX,
                   CallEvent.kind == EV_PIN_FAILED, CallEvent.at >= since))).all()
    return failures_by_clinician(list(details), ids)


# --- the call ----------------------------------------------------------------------------

async def _event(s: Session, kind: str, **detail: object) -> None:
    await calls.add_event(s.db, s.call_id, kind, **detail)


async def _first_key(s: Session, items: Sequence[Item]) -> str | None:
    """The first digit of a PIN, keyed during the prompt or soon after; '*', '#' or
    nothing is no PIN."""
    key = await ask(s.channel, items, DIGITS, FIRST_KEY_MS)
    return key if key is not None and key in DIGITS else None


async def identify(s: Session) -> Clinician | None:
    """Offer the PIN prompt to a clinician's phone; the clinician whose PIN was keyed, or
    None for the patient flow (not a clinician's phone, locked out, no key, wrong PINs)."""
    holders = pin_holders(s.practice, s.caller_e164)
    if not holders or s.practice is None:
        return None
    ids = sorted(c.id for c in holders)
    failures = await recent_failures(s.db, s.practice.id, set(ids), calls.now())
    open_ = tuple(c for c in holders if failures[c.id] < LOCKOUT_FAILURES)
    if not open_:
        await _event(s, "clinician.locked_out", clinicians=ids,
                     failures=max(failures.values()))
        log.warning("call %s: PIN prompt withheld, clinician %s locked out (%d wrong PINs)",
                    s.call_id, ",".join(ids), max(failures.values()))
        return None
    tries = min(tries_left(failures[c.id]) for c in open_)
    named = sorted(c.id for c in open_)
    s.step = STEP_PIN
    await _event(s, "clinician.offered", clinicians=named, tries=tries)
    lib = s.library
    prompt = [lib.flow("clinician_offer")]
    for attempt in range(1, tries + 1):
        key = await _first_key(s, prompt)
        if key is None:
            await _event(s, "clinician.no_pin", attempt=attempt)
            return None
        keyed = await read_keys(s, key, MAX_PIN_DIGITS, PIN_KEY_MS)
        who = who_keyed(open_, keyed)
        if who is not None:
            await _event(s, "clinician.pin_ok", clinician=who.id, attempt=attempt)
            log.info("call %s: clinician %s on the clinician line", s.call_id, who.id)
            return who
        await _event(s, EV_PIN_FAILED, clinicians=named, attempt=attempt)
        log.info("call %s: wrong PIN for %s (try %d of %d)", s.call_id, ",".join(named),
                 attempt, tries)
        await play(s.channel, [lib.flow("pin_wrong")])
        prompt = [lib.flow("ask_pin")]
    await _event(s, "clinician.pin_refused", tries=tries)
    return None


async def serve(s: Session, clinician: Clinician) -> Outcome:
    """The call is the clinician's now: its route says so, and they hear the messages."""
    s.step = STEP_LINE
    await calls.update_call(s.db, s.call_id, route=ROUTE_CLINICIAN_LINE)
    await _event(s, "route.changed", route=ROUTE_CLINICIAN_LINE, clinician=clinician.id)
    copies: list[Path] = []
    try:
        await Line(s, clinician, copies).run()
    finally:
        for path in copies:  # recordings copied into the PBX for this call only
            path.unlink(missing_ok=True)
    return Outcome()


@dataclass
class Line:
    """The messages waiting for a practice, read to one clinician, oldest first."""

    s: Session
    clinician: Clinician
    copies: list[Path]

    @property
    def practice(self) -> Practice:
        assert self.s.practice is not None  # identify() found the clinician in it
        return self.s.practice

    async def run(self) -> None:
        s, lib = self.s, self.s.library
        pending = await callbacks.pending_messages(s.db, self.practice.id)
        await _event(s, "clinician.messages", count=len(pending))
        if not pending:
            await play(s.channel, [lib.flow("no_pending")])
            return
        count = len(pending)
        await play(s.channel, [lib.flow("you_have"), SayNumber(count),
                               lib.flow("message_waiting" if count == 1
                                        else "messages_waiting")])
        for index, (cb, received) in enumerate(pending, 1):
            if index > 1:
                await play(s.channel, [lib.flow("next_message")])
            if not await self.message(index, cb, received):
                await _event(s, "clinician.silent", callback=cb.id)
                await play(s.channel, [lib.flow("goodbye")])
                return
        await play(s.channel, [lib.flow("no_more_messages")])

    async def message(self, index: int, cb: OncallCallback, received: datetime) -> bool:
        """One message: hear it, then acknowledge, hear it again or skip it. False when
        the clinician answers nothing (they put the phone down)."""
        s, lib = self.s, self.s.library
        current = await callbacks.get(s.db, cb.id)
        if current is None or current.status != CB_PENDING:
            await _event(s, "clinician.already_taken", callback=cb.id)
            await play(s.channel, [lib.flow("line_taken_by_other")])
            return True
        body = [lib.flow("message"), SayNumber(index), lib.flow("received_at"),
                *say_time(received, self.practice.timezone, utc_now()),
                *await message_items(s.services, cb.call_id, f"{s.call_id}-{index}",
                                     self.copies)]
        items, silent = body, 0
        for _ in range(MENU_ROUNDS):
            key = await ask(s.channel, [*items, lib.flow("line_menu")], "123", KEY_WAIT_MS)
            if key == "1":
                await self.acknowledge(cb)
                return True
            if key == "3":
                await _event(s, "clinician.skipped", callback=cb.id)
                return True
            if key == "2":
                items = body
                continue
            silent += 1
            if silent >= SILENT_ROUNDS:
                return False
            items = []  # silence or another key: the menu again, not the whole message
        return True

    async def acknowledge(self, cb: OncallCallback) -> None:
        s, lib = self.s, self.s.library
        won = await callbacks.acknowledge(s.db, cb.id, clinician_id=self.clinician.id,
                                          via=VIA, now=utc_now())
        await _event(s, "clinician.acknowledged" if won else "clinician.ack_lost",
                     callback=cb.id, call=cb.call_id, clinician=self.clinician.id)
        if not won:
            await play(s.channel, [lib.flow("line_taken_by_other")])
            return
        log.info("call %s: clinician %s acknowledged call-back %s on the clinician line",
                 s.call_id, self.clinician.id, cb.id)
        # As on a call-back leg, through the same gate; `g`: the clinician stays on the
        # line after the patient hangs up, for the next message. The patient sees the
        # practice's number, never the clinician's own.
        await offer_patient_call(s.services, s.channel, self.practice, cb.call_id,
                                 self.clinician.id, [lib.flow("screen_taken")],
                                 offer="line_offer_dial", refused="line_cannot_dial",
                                 dial_options="g", present_as=caller_id(self.practice))
