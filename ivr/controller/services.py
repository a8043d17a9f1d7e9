"""The services a call's flow uses (one set per controller process), and the files the
controller keeps for the dialplan; typed, so flows reach their collaborators typed."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from ivr import contract
from ivr.ami import AmiClient, AmiError
from ivr.config import Settings
from ivr.db.engine import Database
from ivr.flows.speech import PromptLibrary
from ivr.oncall.dialer import Dialer
from ivr.pbx import safefs
from ivr.pbx.instance import PbxInstance
from ivr.records import audit, calls, reconcile
from ivr.rules import RuleSet
from ivr.rules.runtime import (
    RulesRuntime,
)
from ivr.secure import files
from ivr.transcribe.service import Transcriber

log = logging.getLogger(__name__)

class Services:
    """Everything a flow may use; one instance per controller process.

    The rules runtime, the prompt library and the dialler are made from the others when
    not given (tests give their own)."""

    def __init__(self, settings: Settings, db: Database, pbx: PbxInstance, ami: AmiClient, *,
                 rules_runtime: RulesRuntime | None = None,
                 speech: PromptLibrary | None = None, dialer: Dialer | None = None,
                 transcriber: Transcriber | None = None) -> None:
        self.settings, self.db, self.pbx, self.ami = settings, db, pbx, ami
        self.rules_runtime: RulesRuntime = rules_runtime or RulesRuntime.for_settings(settings)
        self.dialer: Dialer = dialer or Dialer(
            ami, db, lambda pid: self.rules.practices.get(pid)
            if self.rules is not None else None)
        sounds = pbx.host_dir / "sounds"
        self.speech: PromptLibrary = speech or PromptLibrary(
            sounds / "ivr", pbx.inner_path, settings.prompts_cache_dir,
            hand=lambda path: files.give_to_pbx(pbx, path, top=sounds))
        # Transcripts of the name and reason, in worker processes (started by Controller).
        self.transcriber: Transcriber = transcriber or Transcriber(settings, db)
        self._fallback_written: dict[str, str] = {}

    def clock(self) -> datetime:
        """The instant a call's schedule is judged at."""
        return calls.now()

    @property
    def runtime(self) -> RulesRuntime:
        return self.rules_runtime

    @property
    def rules(self) -> RuleSet | None:
        """The rules in force (None before the first good load).

        A flow reads this once when a call starts and keeps the reference for the whole
        call: a reload swaps what this returns, never the immutable RuleSet a call holds.
        """
        return self.runtime.current

    def fallback_map(self, instant: datetime) -> dict[str, str]:
        """Fallback files: number digits -> '-'-joined fallback numbers (digits)."""
        from ivr.rules.oncall import fallback_numbers

        out: dict[str, str] = {}
        if self.rules is None:
            return out
        for practice in self.rules.practices.values():
            numbers = [n.lstrip("+") for n in fallback_numbers(practice, instant)]
            value = "-".join(n for n in numbers if n.isdigit())
            if not value:  # no file at all: the dialplan never reads an empty one
                continue
            for number in (*practice.dids, *practice.forwarding_numbers):
                key = number.lstrip("+")
                if key.isdigit():
                    out[key] = value
        return out

    async def write_fallbacks(self) -> None:
        """Write the fallback numbers where the dialplan reads them (only what changed)."""
        wanted = self.fallback_map(datetime.now(UTC))
        try:
            changed = await asyncio.to_thread(write_fallback_files, self.pbx, wanted)
        except OSError as exc:
            log.warning("could not write fallback numbers for the PBX (%s)",
                        type(exc).__name__)
            return
        self._fallback_written = wanted
        log.info("fallback numbers written for %d numbers (%d changed)", len(wanted),
                 changed)

    async def report_refused(self, reason: str, uniqueid: str, route: str) -> None:
        """An AGI connection or call start refused at the trust boundary: audited."""
        detail: dict[str, Any] = {"reason": reason}
        if route:
            detail["route"] = route
        try:
            await audit.record(self.db, audit.controller_actor(self.settings.instance),
                               audit.AGI_REFUSED, subject=uniqueid or None, detail=detail)
        except Exception as exc:  # the caller is already on the fallback; only log
            audit_failed(audit.AGI_REFUSED, exc)

    async def sweep_lost_calls(self) -> int:
        """After a (re)connection: calls the PBX lost without a stamp become pbx_failure."""
        assert self.dialer is not None
        # A call whose record is made after the channels are listed is not in the list:
        # only calls started before it (with a margin for the record's commit) count.
        listed_at = calls.now() - timedelta(seconds=2)
        try:
            live = await self.dialer.live_channel_ids()
        except AmiError as exc:
            log.warning("could not list channels to find lost calls: %s", exc)
            return 0
        stamped = set(reconcile.pending_stamps(self.pbx.host_dir))
        swept = await calls.sweep_lost_calls(
            self.db, self.settings.instance, live, stamped,
            older_than=listed_at)
        for call_id in swept:
            log.warning("call %s: no channel and no hang-up stamp: the PBX lost it "
                        "(recorded pbx_failure)", call_id)
        return len(swept)

    async def reconcile(self, only: str | None = None) -> int:
        return await reconcile.reconcile(
            self.db, node=self.settings.instance, pbx_dir=self.pbx.host_dir,
            spool_fallback_dir=self.pbx.fallback_recordings_dir,
            recordings_dir=self.settings.recordings_dir, only=only)


def write_fallback_files(pbx: PbxInstance, wanted: dict[str, str]) -> int:
    """Make the fallback folder hold exactly `wanted` (key -> value files); return how
    many files changed. Each file is replaced whole (rename), so the dialplan reads the
    old numbers or the new ones, never half of either; the folder is the PBX user's, so
    every operation goes through ivr.pbx.safefs (no link is ever followed)."""
    base, folder = pbx.host_dir, contract.DIR_FALLBACK
    owner = pbx.pbx_owner()
    safefs.make_dirs(base, folder, owner)
    with safefs.open_dir(base, folder) as fd:
        present = [n for n in os.listdir(fd) if not n.startswith(".")]
    changed = 0
    for name in present:
        if name not in wanted and name != contract.FALLBACK_DEFAULT_KEY:
            safefs.unlink(base, f"{folder}/{name}")
            changed += 1
    for key, value in wanted.items():
        rel = f"{folder}/{key}"
        if safefs.read_small(base, rel) == value.encode():
            continue
        safefs.write_file(base, rel, value.encode(), owner)
        changed += 1
    return changed


def audit_failed(what: str, exc: Exception) -> None:
    # Type and first line only: a driver's message may go on to quote its parameters.
    log.warning("%s", audit.AuditError.of(exc, f"{what} not recorded; going on"))


