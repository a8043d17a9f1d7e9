"""The call-back loop: claim due call-backs from the database and ring the next clinician.

Runs inside the controller (started and stopped with it). Each due call-back's next
attempt is claimed in the database (ivr.oncall.callbacks.claim_attempt: compare-and-set plus a
unique attempt row, committed before the Originate), so a restart, a second loop or an
AMI reconnect never rings the same attempt twice; an attempt left `placing` by a crash is
resolved by the dialler (channel still up, else `unknown`) and the schedule goes on.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from ivr import clock
from ivr.controller.services import Services
from ivr.db.kinds import LegStatus
from ivr.db.models import LEG_CALLBACK
from ivr.oncall import callbacks
from ivr.oncall.dialer import Leg, new_leg_id, utc_now

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
LEG_LIMIT_SECONDS = 180  # ring + screening of one call-back leg, at most


class CallbackScheduler:
    """Claims due call-backs every tick and follows the legs it places."""

    def __init__(self, services: Services, tick: float = TICK_SECONDS) -> None:
        self.services = services
        self.tick_seconds = tick
        self._following: dict[str, asyncio.Task[None]] = {}  # callback id -> its leg

    async def run(self) -> None:
        # One bad row must not stop every call-back: a failed tick is logged, the next
        # comes on time.
        await clock.every(self.tick_seconds, self.tick, "call-back tick", log=log,
                          first_delay=0)

    async def stop(self) -> None:
        for task in list(self._following.values()):
            task.cancel()
        await asyncio.gather(*self._following.values(), return_exceptions=True)

    async def tick(self) -> int:
        """Place every due attempt this process can claim; how many it placed."""
        services = self.services
        if not services.ami.connected or services.rules is None:
            return 0
        placed = 0
        now = utc_now()
        for cb in await callbacks.due(services.db, now):
            if cb.id in self._following or any(
                    leg.call_id == cb.call_id for leg in services.dialer.legs.values()):
                continue  # one of its legs still rings or screens: never two at once
            practice = services.rules.practices.get(cb.practice_id)
            if practice is None:
                log.warning("call-back %s: practice no longer in the rules", cb.id)
                continue
            leg_id = new_leg_id()
            claimed = await callbacks.claim_attempt(services.db, cb, practice, now, leg_id,
                                                    f"ivrleg-{leg_id}")
            if claimed is None:
                continue
            step = claimed.step
            leg = Leg(id=leg_id, call_id=cb.call_id, kind=LEG_CALLBACK, practice=practice,
                      clinician_id=step.clinician_id, number=step.number,
                      ring_seconds=step.ring_seconds, callback_id=cb.id)
            task = asyncio.create_task(self._follow(leg), name=f"callback-{cb.id}")
            self._following[cb.id] = task
            task.add_done_callback(functools.partial(self._forget, cb.id))
            placed += 1
            log.info("call %s: call-back attempt %d placed", cb.call_id, claimed.attempt_no)
        return placed

    def _forget(self, callback_id: str, _task: asyncio.Task[None]) -> None:
        """Done callback of a followed leg: the call-back is no longer being followed."""
        self._following.pop(callback_id, None)

    async def _follow(self, leg: Leg) -> None:
        dialer = self.services.dialer
        if not await dialer.originate(leg):
            return
        try:
            await asyncio.wait_for(asyncio.shield(leg.result), LEG_LIMIT_SECONDS)
        except TimeoutError:
            await dialer.finish(leg, LegStatus.UNKNOWN, detail="no-news")
            dialer.forget(leg)
