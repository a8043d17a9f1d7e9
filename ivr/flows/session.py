"""One call while the flow runs: its channel, decision, rules, and the step it is at.

Holds no patient data beyond what the flow needs next (the caller's number to offer it
back); everything captured is written to the database the moment it is captured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from ivr.agi.protocol import AgiChannel
from ivr.controller.services import Services
from ivr.flows.decide import Decision
from ivr.flows.speech import Item, PlayFile, PromptLibrary, say_time
from ivr.rules.model import Intake, Practice
from ivr.texts import DEFAULT_LANGUAGE, for_language
from ivr.transcribe.redflags import Flag, flags_for


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
        if self.decision.closes_at is not None:
            out["closing_time"] = say_time(self.decision.closes_at, zone, self.instant,
                                           self.language)
        return out

    def prompt(self, pid: str) -> list[Item]:
        # The slots depend only on the decision and the call's instant: computed once.
        return self.library.items(self.practice, pid, self._slots, language=self.language)
