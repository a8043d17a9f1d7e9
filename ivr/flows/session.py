"""One call while the flow runs: its channel, decision, rules, and the step it is at.

Holds no patient data beyond what the flow needs next (the caller's number to offer it
back); everything captured is written to the database the moment it is captured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from ivr.agi.protocol import AgiChannel
from ivr.controller.services import Services
from ivr.flows.decide import Decision
from ivr.flows.speech import (
    ALL_KEYS,
    MAX_LEADS,
    Item,
    PlayFile,
    PromptLibrary,
    as_files,
    play,
    say_time,
)
from ivr.records import calls
from ivr.rules.model import Intake, Practice
from ivr.texts import DEFAULT_LANGUAGE, for_language
from ivr.transcribe.redflags import Flag, flags_for


@dataclass(frozen=True)
class Lead:
    """Prompts the next question plays first, in the same command (speech.read_after):
    the greeting and the emergency notice, so no gap falls between them and the first
    question. `step` is the call's step while it plays on its own (flush_lead); `event`,
    if any, goes in the timeline once it was heard (on its own: with whether a key
    skipped it; in the question: a key there was the answer's start)."""

    items: list[Item]
    step: str
    event: str | None = None


@dataclass
class Session:
    channel: AgiChannel
    call_id: str
    services: Services
    decision: Decision
    instant: datetime  # when the call started (the schedule was judged at this instant)
    regions: tuple[str, ...]
    caller_e164: str | None
    step: str = "start"
    told: list[str] = field(default_factory=list)  # texts of what the caller was told
    chosen_language: str | None = None  # picked at the start (ivr.flows.language)
    #: Played before the next question, in its command (take_lead), or on its own (flush_lead).
    leads: list[Lead] = field(default_factory=list)
    #: The call's writes being committed while the caller hears the next prompt (soon).
    background: list[asyncio.Future[None]] = field(default_factory=list)

    def soon(self, write: Coroutine[Any, Any, object]) -> None:
        """Commit one of the call's writes while the caller already hears what follows.

        A write waits for the one before it, so the record keeps the order the flow took
        them in. The flow waits for all of them (`settle`) before it acts on the caller's
        next answer, before anyone else reads the call (a clinician's screening) and
        before the call ends: a captured field is committed before the next one is
        taken, and the sentinel is last. Without this, a caller heard each commit as
        silence between a key and the next prompt: on a loaded controller, with many
        calls' writes queued at the database, hundreds of milliseconds, and a key
        pressed in such a gap is dropped by res_agi.
        """
        previous = self.background[-1] if self.background else None

        async def run() -> None:
            try:
                if previous is not None:  # done or failed: a failed write stops no later one
                    await asyncio.wait([previous])
            except asyncio.CancelledError:
                write.close()  # cancelled before it began: never started, nothing half done
                raise
            await write

        self.background.append(asyncio.ensure_future(run()))

    def event_soon(self, kind: str, **detail: object) -> None:
        """A timeline event, written as `soon` writes (no patient data in `detail`)."""
        self.soon(calls.add_event(self.db, self.call_id, kind, **detail))

    async def settle(self) -> None:
        """Every write started by `soon` is committed (the first error is raised once
        all of them have ended)."""
        pending, self.background = self.background, []
        failed: BaseException | None = None
        for task in pending:
            try:
                await task
            except Exception as exc:
                failed = failed or exc
        if failed is not None:
            raise failed

    def take_lead(self) -> list[list[PlayFile]]:
        """The pending leads' files, for a question's own command ([]: none pending, or
        one that is not all files: then the question's path calls flush_lead, which
        plays them on their own first). The question reports them heard (lead_heard)."""
        files = [as_files(lead.items) for lead in self.leads]
        if not all(files) or len(files) > MAX_LEADS:
            return []
        return [f for f in files if f is not None]

    def lead_heard(self) -> None:
        """The leads were played in the question's Read (a key there is its answer)."""
        for lead in self.leads:
            if lead.event:
                self.event_soon(lead.event, with_question=True)
        self.leads = []

    async def flush_lead(self) -> None:
        """Play the pending leads on their own (what comes next is not a question that
        can take them); a key skips one."""
        while self.leads:
            lead = self.leads.pop(0)
            self.step = lead.step
            skipped = await play(self.channel, lead.items, ALL_KEYS)
            if lead.event:
                self.event_soon(lead.event, skipped=bool(skipped))

    @property
    def practice(self) -> Practice | None:
        return self.decision.practice

    @property
    def language(self) -> str:
        """The caller's language (a tag such as es-US): the one they picked, else the
        practice's default."""
        if self.chosen_language is not None:
            return self.chosen_language
        return self.practice.language if self.practice is not None else DEFAULT_LANGUAGE

    def flow(self, key: str) -> PlayFile:
        """One of the controller's own sentences, in the caller's language."""
        return self.library.flow(key, self.language)

    def library_text(self, key: str) -> str:
        """The words of one of the controller's sentences, as this caller hears them."""
        return for_language(self.language).FLOW[key]

    def red_flags(self) -> tuple[Flag, ...]:
        if self.practice is None:
            return flags_for(DEFAULT_LANGUAGE)
        rf = self.practice.red_flags
        return flags_for(self.language, rf.phrases, rf.defaults)

    @property
    def intake(self) -> Intake:
        return self.practice.intake if self.practice is not None else Intake()

    @property
    def library(self) -> PromptLibrary:
        return self.services.speech

    @property
    def db(self) -> Any:
        return self.services.db

    @property
    def timeout_ms(self) -> int:
        return self.intake.input_timeout_seconds * 1000

    @cached_property
    def _slots(self) -> dict[str, list[Item]]:
        return self.slots()

    def slots(self) -> dict[str, list[Item]]:
        """Per-call values spoken by Asterisk inside the rules' prompt texts."""
        out: dict[str, list[Item]] = {}
        zone = self.practice.timezone if self.practice is not None else "UTC"
        if self.decision.reopens_at is not None:
            out["callback_time"] = say_time(self.decision.reopens_at, zone, self.instant,
                                            self.language)
        else:  # closed until further notice: never "after ." with a gap
            out["callback_time"] = [self.flow("reopening_unknown")]
        if self.decision.closes_at is not None:
            out["closing_time"] = say_time(self.decision.closes_at, zone, self.instant,
                                           self.language)
        return out

    def prompt(self, pid: str) -> list[Item]:
        # The slots depend only on the decision and the call's instant: computed once.
        return self.library.items(self.practice, pid, self._slots, language=self.language)
