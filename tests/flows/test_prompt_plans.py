"""What a rules prompt plays is worked out once per practice, prompt and language (issue
16: rendering, splitting and hashing at every prompt cost ~8 ms of a call's CPU), while
the per-call slots are still filled per call, and rules loaded again are worked out
again."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivr.flows.speech import PlayFile, PromptLibrary, SayTime
from ivr.rules import load_rules
from ivr.rules.model import Practice

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sunny() -> Practice:
    res = load_rules(REPO / "routing_rules", now=datetime(2026, 11, 1, tzinfo=UTC))
    assert res.ok and res.rules is not None
    return res.rules.practices["sunny-pediatrics"]


@pytest.fixture
def library(tmp_path, monkeypatch):
    """A library whose text pieces are named, not spoken (no TTS here), counting how
    often a prompt's text is worked out."""
    lib = PromptLibrary(tmp_path / "sounds", str, tmp_path / "cache")
    monkeypatch.setattr(lib, "_file_item", lambda text, voice="": PlayFile(f"{voice}:{text}"))
    worked: list[str] = []
    pieces = lib._pieces
    monkeypatch.setattr(lib, "_pieces", lambda p, pid, lang=None: (
        worked.append(pid), pieces(p, pid, lang))[1])
    lib.worked = worked
    return lib


def _slot(n: int) -> dict[str, list[SayTime]]:
    return {"callback_time": [SayTime(1_800_000_000 + n, "America/New_York", "IM p")]}


def test_the_text_once_the_slots_every_call(library, sunny):
    first = library.items(sunny, "callback_promise", _slot(1))
    second = library.items(sunny, "callback_promise", _slot(2))
    assert library.worked == ["callback_promise"]
    assert first[:-1] == second[:-1] and first[-1] != second[-1]
    assert second[-1] == _slot(2)["callback_time"][0]
    library.items(sunny, "callback_promise", _slot(3), language="es-US")
    assert library.worked == ["callback_promise", "callback_promise"]


def test_a_practice_of_reloaded_rules_is_worked_out_again(library, sunny):
    sunny = replace(sunny, prompts={})  # the built-in greeting, which names {practice}
    library.items(sunny, "overflow_greeting")
    reloaded = replace(sunny, name="Sunny Pediatrics of Boston")
    said = library.items(reloaded, "overflow_greeting")
    assert library.worked == ["overflow_greeting", "overflow_greeting"]
    assert any("of Boston" in item.path for item in said if isinstance(item, PlayFile))
    library.items(reloaded, "overflow_greeting")
    assert len(library.worked) == 2
