"""Placing clinician legs: the one dialling gate, AMI Originate once, and leg tracking.

Every number the controller makes the PBX dial goes through `allowed_number`: a number
the practice's rules name (clinicians' phones, the overflow desk), or, only after a
clinician acknowledged a message, that call's confirmed callback number. Nothing a
caller keys can make the PBX dial anywhere else.

A leg is an AMI Originate (Async) of PJSIP/<digits>@clinician-gateway into the
ivr-clinician context, with our own ChannelId and IVR_LEG. Its row is written and
committed `placing` BEFORE the Originate, and an Originate is never re-sent: if AMI drops
while it is in flight, the leg is resolved after the reconnect by looking for its
channel (CoreShowChannels), else marked `unknown`. The waiting flow learns the result
through `Leg.result` (set by AMI events or by the screen route).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from sqlalchemy import select

from ivr import clock, contract, ids
from ivr.ami import AmiActionError, AmiClient, AmiConnectionLost, AmiError, AmiNotConnected
from ivr.db.engine import Database
from ivr.db.kinds import LegStatus
from ivr.db.models import (
    LEG_ACCEPTED,
    LEG_ACTIVE,
    LEG_ANSWERED,
    LEG_BUSY,
    LEG_FAILED,
    LEG_LIVE,
    LEG_NO_ANSWER,
    LEG_PLACING,
    LEG_UNKNOWN,
    Call,
    OncallLeg,
)
from ivr.oncall import leg_rows
from ivr.records.calls import close_leg
from ivr.rules.model import Practice

log = logging.getLogger(__name__)

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
#: Number types a patient call-back may never reach (toll fraud's favourites).
_REFUSED_TYPES = {phonenumbers.PhoneNumberType.PREMIUM_RATE,
                  phonenumbers.PhoneNumberType.SHARED_COST,
                  phonenumbers.PhoneNumberType.UAN,
                  phonenumbers.PhoneNumberType.PAGER,
                  phonenumbers.PhoneNumberType.VOICEMAIL}
CAUSE_WAIT_SECONDS = 1.0  # an unexplained Originate failure waits this long for its cause

def rules_numbers(practice: Practice) -> frozenset[str]:
    """Every number the practice's rules name for clinicians (and the overflow desk)."""
    nums = {c.phone for c in practice.on_call.clinicians.values()}
    nums |= set(practice.overflow.bridge_to)
    return frozenset(nums)


def allowed_number(practice: Practice, number: str | None, *,
                   patient: str | None = None) -> str | None:
    """The E.164 number if the controller may dial it for this practice, else None.

    `patient` is the call's confirmed callback number, passed only once a clinician has
    acknowledged the message; it must be a plain E.164 number of the practice's country
    that no one pays a premium for.
    """
    if not isinstance(number, str) or not _E164.fullmatch(number):
        return None  # no normalising here: only exact E.164 strings pass
    if number in rules_numbers(practice):
        return number
    if patient is None or number != patient:
        return None
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    if phonenumbers.region_code_for_number(parsed) != practice.country.upper():
        return None  # a foreign number is never dialled on a caller's word
    if phonenumbers.number_type(parsed) in _REFUSED_TYPES:
        return None
    return number


def dial_target(number: str) -> str:
    """The PJSIP dial string for a number that passed `allowed_number`."""
    assert _E164.fullmatch(number), "dial_target takes gated E.164 numbers only"
    return f"PJSIP/{number[1:]}@{contract.ENDPOINT_GATEWAY}"


def caller_id(practice: Practice) -> str:
    """The practice's name and public number, as clinicians' phones show it."""
    number = (practice.forwarding_numbers or practice.dids or ("",))[0]
    name = re.sub(r"[^A-Za-z0-9 .,'-]", "", practice.name)[:40]
    return f'"{name}" <{number}>'


def sent_at_all(exc: Exception) -> bool:
    """False when AMI refused the action before sending it (it was not connected)."""
    return not isinstance(exc, AmiNotConnected)


utc_now = clock.now  # the one clock (ivr.clock)


def new_leg_id() -> str:
    return ids.new_id()


class RingClaim:
    """Shared by the legs rung together: the first clinician to press 1 takes the call."""

    def __init__(self) -> None:
        self.taken_by: str | None = None


@dataclass
class Leg:
    """One leg in flight, as this process knows it."""

    id: str
    call_id: str
    kind: str
    practice: Practice
    clinician_id: str | None
    number: str
    ring_seconds: int
    callback_id: str | None = None
    result: asyncio.Future[LegStatus] = field(default_factory=lambda: asyncio.get_running_loop()
                                        .create_future())
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    channel: str | None = None  # its channel name, from the screen AGI
    caller_gone: bool = False  # live legs: the caller hung up while this leg was out
    placed_mono: float = 0.0
    answered_mono: float | None = None
    hangup_cause: str | None = None
    dial_status: str | None = None  # from DialEnd, when the leg ended unanswered
    final_detail: str | None = None  # the detail given with the result that settled
    ring: RingClaim | None = None  # set when other legs ring at the same time

    def claim(self) -> bool:
        """Take the call for this leg; False when a leg rung with it took it first.

        No await between the test and the set, so two keys pressed at once on two legs
        cannot both win (one event loop)."""
        if self.ring is None:
            return True
        if self.ring.taken_by in (None, self.id):
            self.ring.taken_by = self.id
            return True
        return False

    @property
    def taken_elsewhere(self) -> bool:
        return self.ring is not None and self.ring.taken_by not in (None, self.id)

    @property
    def channel_id(self) -> str:
        return f"ivrleg-{self.id}"

    @property
    def action_id(self) -> str:
        return f"ivrleg-{self.id}"

    def settle(self, status: LegStatus) -> bool:
        """Give the waiting flow its result once; False if it already had one."""
        if self.result.done():
            return False
        self.result.set_result(status)
        return True


# OriginateResponse Reason codes (Asterisk's AST_CONTROL_* values).
_REASONS = {"5": LEG_BUSY, "3": LEG_NO_ANSWER, "1": LEG_NO_ANSWER, "8": LEG_FAILED,
            "0": LEG_FAILED}
# DialEnd DialStatus of a leg that did not answer. Asterisk 22 reports a 486 Busy Here
# as OriginateResponse Reason 0 (seen here) while its DialEnd says BUSY; the two come
# from different threads, in either order.
DIAL_STATUS = {"BUSY": LEG_BUSY, "NOANSWER": LEG_NO_ANSWER, "CANCEL": LEG_NO_ANSWER,
                "CONGESTION": LEG_FAILED, "CHANUNAVAIL": LEG_FAILED}


# Hang-up causes of a leg that never answered (Q.850).
_CAUSES = {"17": LEG_BUSY, "18": LEG_NO_ANSWER, "19": LEG_NO_ANSWER, "16": LEG_NO_ANSWER,
           "0": LEG_NO_ANSWER, "21": LEG_BUSY}


class Dialer:
    """Places legs through the gate, tracks them by AMI events, resolves lost ones."""

    def __init__(self, ami: AmiClient, db: Database,
                 practice_of: Any = lambda _pid: None) -> None:
        self.ami = ami
        self.db = db
        self.practice_of = practice_of  # practice id -> Practice (the rules in force)
        self.legs: dict[str, Leg] = {}
        self._by_channel: dict[str, Leg] = {}
        # A clinician's channel name -> the patient leg its own Dial() places.
        self._dialling: dict[str, Leg] = {}
        self.originates = 0  # Originate actions sent by this process (tests, bench)

    def subscribe(self) -> None:
        self.ami.subscribe("DialEnd", self._on_dial_end)
        self.ami.subscribe("OriginateResponse", self._on_originate_response)
        self.ami.subscribe("Hangup", self._on_hangup)
        self.ami.on_connected(self.resolve_lost)

    # --- database ------------------------------------------------------------------
    async def record(self, leg: Leg, **fields: Any) -> None:
        """Set columns of the leg's row (through its call's journal: ivr.oncall.leg_rows)."""
        await leg_rows.update(self.db, leg.call_id, leg.id, **fields)

    async def insert(self, leg: Leg, *, role: str | None, step_index: int | None,
                     attempt_no: int | None = None) -> None:
        """The `placing` row, committed (or journaled, fsynced) before anything reaches
        the PBX."""
        await leg_rows.insert(self.db, leg.call_id, {
            "id": leg.id, "callback_id": leg.callback_id, "attempt_no": attempt_no,
            "kind": leg.kind, "practice_id": leg.practice.id,
            "clinician_id": leg.clinician_id, "role": role, "number": leg.number,
            "step_index": step_index, "channel_id": leg.channel_id,
            "status": LEG_PLACING, "placed_at": utc_now()})

    # --- placing ---------------------------------------------------------------------
    def register(self, leg: Leg) -> None:
        self.legs[leg.id] = leg
        self._by_channel[leg.channel_id] = leg

    def forget(self, leg: Leg) -> None:
        self.legs.pop(leg.id, None)
        self._by_channel.pop(leg.channel_id, None)

    async def originate(self, leg: Leg) -> bool:
        """Send the leg's Originate exactly once (its row must exist); False if it failed.

        A refused number or a refused Originate settles the leg `failed`; a connection
        lost in flight leaves it to `resolve_lost` after the reconnect.
        """
        number = allowed_number(leg.practice, leg.number)
        if number is None:
            log.error("leg %s: number refused by the dialling gate", leg.id)
            await self.finish(leg, LEG_FAILED, detail="refused-by-gate")
            return False
        self.register(leg)
        leg.placed_mono = asyncio.get_running_loop().time()
        fields = {"Channel": dial_target(number), "Context": contract.CTX_CLINICIAN,
                  "Exten": "s", "Priority": "1", "Timeout": str(leg.ring_seconds * 1000),
                  "CallerID": caller_id(leg.practice), "ChannelId": leg.channel_id,
                  "Variable": f"{contract.VAR_LEG}={leg.id}", "ActionID": leg.action_id,
                  "Async": "true"}
        try:
            self.originates += 1
            sent = asyncio.ensure_future(
                self.ami.action({"Action": "Originate", **fields}, as_list=False))
            await sent
        except AmiActionError:
            await self.finish(leg, LEG_FAILED, detail="originate-refused")
            self.forget(leg)
            return False
        except AmiConnectionLost as exc:
            if not sent_at_all(exc):
                await self.finish(leg, LEG_FAILED, detail="ami-down")  # never sent
                self.forget(leg)
                return False
            # Sent, or maybe sent: never re-send. The reconnect looks for its channel.
            log.warning("leg %s: AMI lost during the Originate; not re-sent", leg.id)
            await self.record(leg, detail="ami-lost-in-flight")
            return True
        except AmiError:
            # A timeout: Asterisk may have it. Same rule: never re-send, resolve later.
            log.warning("leg %s: no answer to the Originate; not re-sent", leg.id)
            await self.record(leg, detail="originate-unanswered")
            return True
        log.info("call %s: leg %s placed (%s, step ring %ss)", leg.call_id, leg.id,
                 leg.kind, leg.ring_seconds)
        return True

    async def hangup(self, leg: Leg) -> None:
        """Stop a leg that still rings (the caller left, the wait ran out)."""
        try:
            await self.ami.action({"Action": "Hangup", "Channel": leg.channel_id},
                                  check=False)
        except AmiError:
            pass

    async def finish(self, leg: Leg, status: LegStatus, *, detail: str | None = None,
                     ended: bool = True, settle: bool = True, **fields: Any) -> None:
        """Settle and store a leg's final status: the first one wins, in the row as well.

        Two events may finish a leg at once (DialEnd and OriginateResponse): whichever
        settled `leg.result` first also names the row's status, whatever order their
        database writes take."""
        if settle and leg.settle(status):
            leg.final_detail = detail
        if leg.result.done():
            status, detail = leg.result.result(), leg.final_detail or detail
        now = utc_now()
        ring_ms = fields.pop("ring_ms", None)
        if ring_ms is None and leg.placed_mono:
            end = leg.answered_mono or asyncio.get_running_loop().time()
            ring_ms = int((end - leg.placed_mono) * 1000)
        await leg_rows.finish(self.db, leg.call_id, leg.id, status=status, detail=detail,
                              ring_ms=ring_ms, ended_at=now if ended else None,
                              fields=fields)

    # --- AMI events ------------------------------------------------------------------
    def watch_dial(self, channel: str, leg: Leg) -> None:
        """Follow the Dial() that `channel` runs for `leg` (its DialEnd says how it went)."""
        self._dialling[channel] = leg

    def unwatch_dial(self, channel: str) -> None:
        self._dialling.pop(channel, None)

    async def _on_dial_end(self, event: Any) -> None:
        status = str(event.get("DialStatus", ""))[:16]
        watched = self._dialling.get(event.get("Channel", ""))
        if watched is not None:
            watched.dial_status = status  # its Dial's owner finishes it
        leg = self._by_channel.get(event.get("DestUniqueid", ""))
        if leg is None:
            return
        leg.dial_status = status
        if status in DIAL_STATUS and not leg.result.done():
            await self.finish(leg, DIAL_STATUS[status], detail=f"dial-{status.lower()}")

    async def _on_originate_response(self, event: Any) -> None:
        action_id = event.get("ActionID", "")
        leg = self.legs.get(action_id.removeprefix("ivrleg-")) if action_id.startswith(
            "ivrleg-") else None
        if leg is None:
            return
        if event.get("Response") == "Success":
            return  # answered: the screen route takes it from here
        reason = str(event.get("Reason", "0"))
        if reason == "0" and not leg.result.done():
            # Reason 0 says only "failed" (a 486 too); the leg's DialEnd or Hangup,
            # which Asterisk may send just before or just after this, knows why.
            try:
                await asyncio.wait_for(asyncio.shield(leg.result), CAUSE_WAIT_SECONDS)
            except TimeoutError:
                pass
        status = _REASONS.get(reason, LEG_FAILED)
        log.info("call %s: leg %s not answered (%s)", leg.call_id, leg.id,
                 leg.result.result() if leg.result.done() else status)
        await self.finish(leg, status, detail=f"reason-{reason}")
        leg.ended.set()
        self.forget(leg)

    async def _on_hangup(self, event: Any) -> None:
        leg = self._by_channel.get(event.get("Uniqueid", ""))
        if leg is None:
            return
        leg.hangup_cause = str(event.get("Cause", ""))
        leg.ended.set()
        now = utc_now()
        if not leg.result.done():
            # Hung up before any decision: during screening it counts as declined.
            status = LegStatus.DECLINED if leg.answered.is_set() else \
                _CAUSES.get(leg.hangup_cause, LEG_FAILED)
            await self.finish(leg, status, detail=f"cause-{leg.hangup_cause}")
        await leg_rows.hung_up(self.db, leg.call_id, leg.id, now)
        self.forget(leg)

    # --- after a reconnect or a restart -----------------------------------------------
    def _adopt(self, leg_id: str, row: tuple[Any, ...]) -> None:
        call_id, kind, practice_id, clinician_id, number, callback_id, status = row
        practice = self.practice_of(practice_id)
        if practice is None:
            return
        leg = Leg(id=leg_id, call_id=call_id, kind=kind, practice=practice,
                  clinician_id=clinician_id, number=number, ring_seconds=0,
                  callback_id=callback_id)
        if status in (LEG_ANSWERED, LEG_ACCEPTED):
            leg.answered.set()
        if status == LEG_ACCEPTED:
            leg.settle(LEG_ACCEPTED)  # decided before the restart; its Hangup closes it
        self.register(leg)
        log.info("leg %s: still up after a reconnect or restart; following it", leg_id)

    async def _close_accepted(self, leg_id: str, call_id: str) -> None:
        """An accepted live leg without a channel: it ended when its call did."""
        async with self.db.session() as s:
            row = await s.get(OncallLeg, leg_id)
            ended = await s.scalar(select(Call.ended_at).where(Call.id == call_id))
            if row is None or row.ended_at is not None or ended is None:
                return  # the call's stamp is not in yet: applying it closes the leg
            close_leg(row, ended, "closed-after-restart")
        log.info("leg %s: closed at its call's end after a restart", leg_id)

    async def live_channel_ids(self) -> set[str]:
        response = await self.ami.action({"Action": "CoreShowChannels"}, timeout=10)
        entries = response if isinstance(response, list) else [response]
        return {e.get("Uniqueid", "") for e in entries if e.get("Event") == "CoreShowChannel"}

    async def resolve_lost(self) -> int:
        """Legs left `placing`/`answered` with no live channel become `unknown`.

        Runs after every AMI (re)connection, so also after a controller restart. A leg
        whose channel is still up is followed: its screen AGI and Hangup event finish
        it; that includes an accepted leg still bridged after its controller died. An
        accepted leg whose channel is gone is closed at its call's end (the caller's
        hang-up stamp, applied by reconciliation, closes it when that comes later).
        Nothing is ever re-sent; call-backs go on with their next scheduled attempt.
        """
        async with self.db.session() as s:
            rows = (await s.scalars(select(OncallLeg).where(
                OncallLeg.status.in_(LEG_ACTIVE)
                | ((OncallLeg.status == LEG_ACCEPTED) & OncallLeg.ended_at.is_(None)
                   & (OncallLeg.kind == LEG_LIVE))))).all()
            candidates = [(r.id, r.channel_id) for r in rows]
            known = {r.id: (r.call_id, r.kind, r.practice_id, r.clinician_id, r.number,
                            r.callback_id, r.status) for r in rows}
        if not candidates:
            return 0
        try:
            live = await self.live_channel_ids()
        except AmiError as exc:
            log.warning("could not list channels to resolve legs: %s", exc)
            return 0
        lost = 0
        for leg_id, channel_id in candidates:
            if channel_id in live:
                if leg_id not in self.legs:
                    self._adopt(leg_id, known[leg_id])  # its Hangup event finishes it
                continue
            if known[leg_id][-1] == LEG_ACCEPTED:
                await self._close_accepted(leg_id, known[leg_id][0])
                continue
            leg = self.legs.get(leg_id)
            if leg is not None:
                await self.finish(leg, LEG_UNKNOWN, detail="no-channel-after-reconnect")
                leg.ended.set()
                self.forget(leg)
            else:
                async with self.db.session() as s:
                    row = await s.get(OncallLeg, leg_id)
                    if row is not None and row.status in LEG_ACTIVE:
                        row.status = LEG_UNKNOWN
                        row.detail = "no-channel-after-restart"
                        row.ended_at = row.ended_at or utc_now()
            lost += 1
            log.info("leg %s: no channel after reconnect; marked unknown (not re-sent)",
                     leg_id)
        return lost


__all__ = ["Dialer", "Leg", "allowed_number", "dial_target", "rules_numbers", "caller_id",
           "LEG_ANSWERED"]
