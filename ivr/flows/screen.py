"""Route `screen`: a clinician's leg. Who is calling and why, then "press 1".

Live legs: 1 accepts (the leg parks until the caller's Bridge takes it), 2 passes the
call on; no key is a screen timeout, so a voicemail can never take a call. If the caller
hung up meanwhile, the clinician hears so and may take the call-back instead.
Call-back legs: 1 acknowledges the message (one clinician wins), then "press 1 to call
the patient now" dials the confirmed callback number, through the dialling gate only.
The sentinel on the leg (IVR_RESULT) is written last, as on the caller's side.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

from ivr import contract
from ivr.agi.protocol import AgiChannel, AgiDisconnected, AgiError, AgiHangup, AgiTimeout
from ivr.controller.services import Services
from ivr.db.kinds import LegKind, LegStatus
from ivr.db.models import (
    CB_PENDING,
    LEG_ACCEPTED,
    LEG_ANSWERED,
    LEG_CALLBACK,
    LEG_CALLER_GONE,
    LEG_COMPLETED,
    LEG_DECLINED,
    LEG_FAILED,
    LEG_LIVE,
    LEG_PATIENT,
    LEG_SCREEN_TIMEOUT,
    LEG_TAKEN_BY_OTHER,
    LEG_UNKNOWN,
    OncallLeg,
)
from ivr.flows.intake import spoken_number
from ivr.flows.speech import SCREEN_INTROS, Item, PlayFile, SayDigits, ask, play
from ivr.oncall import callbacks
from ivr.oncall.dialer import DIAL_STATUS, Leg, allowed_number, dial_target, new_leg_id, utc_now
from ivr.records import calls, recordings
from ivr.rules.prompts import render
from ivr.secure import files
from ivr.secure.crypto import CryptoError
from ivr.secure.keys import KeyFileError
from ivr.texts import primary

log = logging.getLogger(__name__)

KEY_WAIT_MS = 5000  # after the menu, per round
KEY_SLICE_MS = 500  # live legs: how often the key wait looks for the caller's hang-up
ROUNDS = 2
PATIENT_RING_SECONDS = 30
SCREEN_SPOOL = "ivr-screen"  # <instance>/sounds/ivr-screen: recordings Asterisk can play
_CHANNEL = re.compile(r"[^A-Za-z0-9/@._-]")


async def handle(services: Services, channel: AgiChannel) -> None:
    """Serve one clinician leg; always ends with the leg's sentinel when it can."""
    result = contract.RESULT_DONE
    leg: Leg | None = None
    copies: list[Path] = []
    try:
        leg_id = "".join(c for c in (await channel.get_variable(contract.VAR_LEG) or "")
                         if c in "0123456789abcdef")[:32]
        leg = services.dialer.legs.get(leg_id) or await _adopt(services, leg_id)
        if leg is None:
            await play(channel, [services.speech.flow("not_waiting")])
        else:
            await _answered(services, leg, channel)
            screen = Screen(services, channel, leg, copies)
            result = await (screen.live() if leg.kind == LEG_LIVE else screen.callback())
    except AgiHangup:
        if leg is not None and not leg.result.done():
            await services.dialer.finish(leg, LEG_DECLINED, detail="hung-up-in-screening")
        return
    except (AgiDisconnected, AgiTimeout):
        return
    except Exception as exc:  # a bug must not leave a clinician in silence
        log.error("leg %s: screening failed (%s)", leg.id if leg else "-",
                  type(exc).__name__, exc_info=exc)
        if leg is not None and not leg.result.done():
            await services.dialer.finish(leg, LegStatus.FAILED, detail="controller-error")
    finally:
        for path in copies:
            path.unlink(missing_ok=True)
    try:
        await channel.set_variable(contract.SENTINEL, result)  # the last act
    except AgiError:
        if leg is not None and leg.ring is not None and leg.ring.taken_by == leg.id:
            leg.ring.taken_by = None  # gone before parking: a colleague may still take it
        return
    if leg is not None and result == contract.RESULT_ACCEPTED:
        # Only now, with the leg told to park, may the caller's side bridge it.
        leg.settle(LEG_ACCEPTED)
        if leg.caller_gone:  # the caller left between the key and the sentinel
            await services.dialer.hangup(leg)


def channel_name(channel: AgiChannel) -> str:
    """The AGI channel's name as Asterisk gave it, cut to what a channel name may hold."""
    return _CHANNEL.sub("", channel.headers.get("channel", ""))[:120]


async def _adopt(services: Services, leg_id: str) -> Leg | None:
    """A call-back leg this process did not place (placed before a restart)."""
    if not leg_id:
        return None
    async with services.db.session() as s:
        row = await s.get(OncallLeg, leg_id)
        if row is None or row.kind != LEG_CALLBACK:
            return None
        data = (row.call_id, row.practice_id, row.clinician_id, row.number, row.callback_id)
    rules = services.rules
    practice = rules.practices.get(data[1]) if rules is not None else None
    if practice is None:
        return None
    leg = Leg(id=leg_id, call_id=data[0], kind=LEG_CALLBACK, practice=practice,
              clinician_id=data[2], number=data[3], ring_seconds=0, callback_id=data[4])
    services.dialer.register(leg)
    log.info("leg %s: adopted after a restart", leg_id)
    return leg


async def _answered(services: Services, leg: Leg, channel: AgiChannel) -> None:
    loop = asyncio.get_running_loop()
    leg.channel = channel_name(channel)
    leg.answered_mono = loop.time()
    leg.answered.set()
    ring_ms = int((leg.answered_mono - leg.placed_mono) * 1000) if leg.placed_mono else None
    await services.dialer.record(leg, status=LEG_ANSWERED, answered_at=utc_now(),
                                 channel=leg.channel, ring_ms=ring_ms)


class Screen:
    """What one clinician hears and presses on one leg."""

    def __init__(self, services: Services, channel: AgiChannel, leg: Leg,
                 copies: list[Path]) -> None:
        self.services, self.channel, self.leg, self.copies = services, channel, leg, copies
        self.lib = services.speech
        self.dialer = services.dialer

    # --- what the clinician hears ------------------------------------------------------
    async def message(self, kind: str) -> list[Item]:
        leg = self.leg
        intro = self.lib.text(render(SCREEN_INTROS[kind], {"practice": leg.practice.name}))
        return [intro, *await message_items(self.services, leg.call_id, leg.id, self.copies)]

    async def ask(self, items: list[Item], keys: str = "12") -> str | None:
        return await ask(self.channel, items, keys, KEY_WAIT_MS)

    async def ask_live(self, items: list[Item], keys: str = "12") -> str | None:
        """As `ask`, but stops as soon as it sees the caller gone (between prompts, and
        within half a second while waiting for a key), so the clinician hears it at once."""
        leg = self.leg
        for item in items:
            if leg.caller_gone or leg.taken_elsewhere:
                return None
            key = await play(self.channel, [item], keys)
            if key is not None:
                return key
        waited = 0
        while waited < KEY_WAIT_MS and not (leg.caller_gone or leg.taken_elsewhere):
            key = await self.channel.wait_for_digit(min(KEY_SLICE_MS, KEY_WAIT_MS - waited))
            if key is not None:
                return key
            waited += KEY_SLICE_MS
        return None

    # --- live legs -----------------------------------------------------------------------
    async def live(self) -> str:
        leg = self.leg
        items = await self.message(LegKind.LIVE)
        for round_no in range(ROUNDS):
            if leg.caller_gone:
                return await self.caller_gone()
            key = await self.ask_live((items if round_no == 0 else []) +
                                      [self.lib.flow("screen_accept")])
            if leg.caller_gone:
                # A 1 pressed to take the call, with the caller already gone, takes the
                # message instead (the clinician hears that the caller hung up).
                return await self.caller_gone(taken=key == "1")
            if leg.taken_elsewhere or (key == "1" and not leg.claim()):
                return await self._taken_elsewhere()
            if key == "1":
                await self.dialer.finish(leg, LEG_ACCEPTED, ended=False, settle=False)
                return contract.RESULT_ACCEPTED
            if key == "2":
                return await self._passed()
        return await self._no_key()

    async def _passed(self) -> str:
        """The clinician pressed 2: this leg is declined and the chain moves on."""
        await self.dialer.finish(self.leg, LEG_DECLINED, detail="pressed-2")
        await play(self.channel, [self.lib.flow("screen_passed")])
        return contract.RESULT_DONE

    async def _taken_elsewhere(self) -> str:
        """A clinician rung at the same time pressed 1 first: this one is thanked."""
        await self.dialer.finish(self.leg, LEG_TAKEN_BY_OTHER, detail="taken-by-other")
        await play(self.channel, [self.lib.flow("taken_elsewhere")])
        return contract.RESULT_DONE

    async def _no_key(self) -> str:
        await self.dialer.finish(self.leg, LEG_SCREEN_TIMEOUT, detail="no-key")
        return contract.RESULT_DONE

    async def caller_gone(self, taken: bool = False) -> str:
        """The caller left while this clinician listened: offer the call-back instead.

        `taken`: the clinician pressed 1 (take the call) after the caller had gone; that
        acknowledges the message without asking again."""
        leg = self.leg
        await self.dialer.finish(leg, LEG_CALLER_GONE, detail="caller-left-in-screening")
        cb = await self._callback_for_call()
        if taken and cb is not None:
            return await self.acknowledge(cb, via=LegKind.LIVE,
                                          before=[self.lib.flow("screen_caller_gone")])
        key = await self.ask([self.lib.flow("screen_caller_gone"),
                              self.lib.flow("screen_ack")])
        if key == "1" and cb is not None:
            return await self.acknowledge(cb, via=LegKind.LIVE)
        return contract.RESULT_DONE

    async def _callback_for_call(self) -> Any:
        for _ in range(20):  # the caller's side queues it as it sees the hang-up
            cb = await callbacks.for_call(self.services.db, self.leg.call_id)
            if cb is not None:
                return cb
            await asyncio.sleep(0.1)
        return None

    # --- call-back legs ------------------------------------------------------------------
    async def callback(self) -> str:
        leg = self.leg
        cb = await callbacks.get(self.services.db, leg.callback_id or "")
        if cb is None or cb.status != CB_PENDING:
            await self.dialer.finish(leg, LEG_DECLINED, detail="already-acknowledged")
            await play(self.channel, [self.lib.flow("already_taken")])
            return contract.RESULT_DONE
        items = await self.message(LegKind.CALLBACK)
        for round_no in range(ROUNDS):
            key = await self.ask((items if round_no == 0 else []) +
                                 [self.lib.flow("screen_ack")])
            if key == "1":
                return await self.acknowledge(cb, via=LegKind.CALLBACK)
            if key == "2":
                return await self._passed()
        return await self._no_key()

    async def acknowledge(self, cb: Any, via: str, before: list[Item] | None = None) -> str:
        leg = self.leg
        won = await callbacks.acknowledge(self.services.db, cb.id,
                                          clinician_id=leg.clinician_id, via=via,
                                          now=utc_now())
        if not won:
            if not leg.result.done():
                await self.dialer.finish(leg, LEG_DECLINED, detail="already-acknowledged")
            await play(self.channel, [self.lib.flow("already_taken")])
            return contract.RESULT_DONE
        if not leg.result.done():
            await self.dialer.finish(leg, LEG_ACCEPTED, detail="acknowledged")
        await offer_patient_call(self.services, self.channel, leg.practice, leg.call_id,
                                 leg.clinician_id,
                                 [*(before or []), self.lib.flow("screen_taken")])
        return contract.RESULT_DONE


async def message_items(services: Services, call_id: str, tag: str,
                        copies: list[Path]) -> list[Item]:
    """What a clinician hears of a message: the name and reason recordings and the
    callback number, as the intake of `call_id` holds them (recordings copied in)."""
    lib = services.speech
    intake = await callbacks.intake_of(services.db, call_id)
    items: list[Item] = []
    language = await calls.language_of(services.db, call_id)
    if primary(language) != primary(None):  # "the caller speaks Spanish", before the rest
        items.append(lib.language_note(language))
    for field, pid in (("name", "screen_name"), ("reason", "screen_reason")):
        row = intake.get(field)
        copy = playable_copy(services, row.recording_path if row else None,
                             f"{tag}-{field}", copies)
        if copy is not None:
            items += [lib.flow(pid), PlayFile(copy)]
    number = intake.get("callback")
    if number is not None and number.value:
        items += [lib.flow("screen_number"), SayDigits(spoken_number(number.value))]
    return items


def playable_copy(services: Services, path: str | None, name: str,
                  copies: list[Path]) -> str | None:
    """A plaintext copy of an intake recording (opened in memory) inside the PBX
    instance, 0600 in a 0700 folder handed to Asterisk (which may not read the data
    folder, nor open a sealed file); listed in `copies` for the caller to delete when the
    call ends. None when there is no recording or it does not open (then the clinician
    hears the rest of the message: better than no message)."""
    if not path or not Path(path).is_file():
        return None
    try:
        wav = recordings.read(Path(path))
    except (OSError, CryptoError, KeyFileError) as exc:
        log.error("recording %s/%s does not open (%s); played without it",
                  Path(path).parent.name, Path(path).name, type(exc).__name__)
        return None
    pbx = services.pbx
    folder = files.private_dir(pbx.host_dir / "sounds" / SCREEN_SPOOL)
    files.give_to_pbx(pbx, folder)
    dest = folder / f"{name}.wav"
    copies.append(dest)  # listed first: deleted at the call's end even if a write fails
    files.write_private(dest, wav)
    files.give_to_pbx(pbx, dest)
    return pbx.inner_path(dest.with_suffix(""))


# DIALSTATUS of the clinician's Dial to the patient -> the patient leg's result.
_PATIENT_RESULTS = {**DIAL_STATUS, "ANSWER": LEG_COMPLETED}


async def offer_patient_call(services: Services, channel: AgiChannel, practice: Any,
                             call_id: str, clinician_id: str | None,
                             before: list[Item], *, offer: str = "offer_dial",
                             refused: str = "cannot_dial", dial_options: str = "",
                             present_as: str | None = None) -> None:
    """After an acknowledgement: 'press 1 to call the patient now', through the gate.

    `offer`/`refused`: the FLOW_TEXTS said; `dial_options`: Dial's (ours, never a
    caller's); `present_as`: the caller ID the patient sees, when the channel's own is
    not the practice's (a clinician calling in from their own phone)."""
    lib = services.speech
    intake = await callbacks.intake_of(services.db, call_id)
    row = intake.get("callback")
    confirmed = row.value if row is not None and row.confirmed else None
    number = allowed_number(practice, confirmed, patient=confirmed) if confirmed else None
    key = await ask(channel, [*before, lib.flow(offer)], "12", KEY_WAIT_MS)
    if key != "1":
        return
    if number is None:
        await calls.add_event(services.db, call_id, "patient.refused_by_gate")
        await play(channel, [lib.flow(refused)])
        return
    leg = Leg(id=new_leg_id(), call_id=call_id, kind=LEG_PATIENT, practice=practice,
              clinician_id=clinician_id, number=number, ring_seconds=PATIENT_RING_SECONDS)
    await services.dialer.insert(leg, role=None, step_index=None)
    if present_as is not None:
        await channel.set_variable("CALLERID(all)", present_as)
    # The number passed the gate above; Dial runs on the clinician's own channel.
    source = channel_name(channel)
    services.dialer.watch_dial(source, leg)
    try:
        await channel.exec("Dial", f"{dial_target(number)},{PATIENT_RING_SECONDS}"
                           + (f",{dial_options}" if dial_options else ""), timeout=6 * 3600)
    except AgiHangup:
        # The clinician hung up (often simply the end of the conversation): the channel
        # cannot be asked any more, but the Dial's DialEnd event said whether it answered.
        status = (leg.dial_status or "").upper()
        await services.dialer.finish(leg, _PATIENT_RESULTS.get(status, LEG_UNKNOWN),
                                     detail="clinician-hung-up")
        raise
    finally:
        services.dialer.unwatch_dial(source)
    status = (await channel.get_variable("DIALSTATUS") or "").upper()
    ring = await channel.get_variable("RINGTIME_MS")
    talk = await channel.get_variable("ANSWEREDTIME_MS")
    final = _PATIENT_RESULTS.get(status, LEG_FAILED)
    await services.dialer.finish(leg, final, detail=f"dial-{status.lower()}"[:64],
                                 ring_ms=int(ring) if ring and ring.isdigit() else None,
                                 bridge_seconds=round(int(talk) / 1000, 2)
                                 if talk and talk.isdigit() else None)
