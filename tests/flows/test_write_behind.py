"""A call's writes are committed while the caller hears the next prompt (Session.soon):
in the order taken, none dropped after a failure, and every one of them committed
before the flow acts on the caller's next answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ivr.agi.protocol import AgiReply
from ivr.flows import intake
from ivr.flows.session import Session
from ivr.flows.speech import PlayFile, PromptLibrary
from ivr.records import calls
from ivr.texts import en

EVENING = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)


def _session(channel: Any = None, services: Any = None, call_id: str = "c1") -> Session:
    decision = SimpleNamespace(practice=None, reopens_at=None, closes_at=None)
    return Session(channel, call_id, services, decision, EVENING, ("US",), None)  # type: ignore[arg-type]


async def _spin() -> None:
    """Let every task that can run, run (no clock involved)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def test_writes_run_in_order_and_a_failed_one_stops_no_later_one():
    s = _session()
    done: list[int] = []
    first = asyncio.Event()

    async def write(n: int, fail: bool = False) -> None:
        if n == 1:
            await first.wait()
        done.append(n)
        if fail:
            raise ValueError(f"write {n}")

    s.soon(write(1))
    s.soon(write(2, fail=True))
    s.soon(write(3))
    await _spin()
    assert done == []  # the first holds the others back: the record keeps the order
    first.set()
    with pytest.raises(ValueError, match="write 2"):
        await s.settle()
    assert done == [1, 2, 3] and s.background == []


class Channel:
    """Answers the date of birth's Read and its read-back's GET OPTION; notes when the
    read-back (SAY DATETIME) starts."""

    def __init__(self, dob: str, confirm: str) -> None:
        self.dob, self.confirm = dob, confirm
        self.uniqueid, self.hung_up = "1700000000.5", False
        self.read_back = asyncio.Event()

    async def command(self, name: str, *args: object, **_kw: object) -> AgiReply:
        if name == "SAY DATETIME":
            self.read_back.set()
        if name == "GET OPTION":
            return AgiReply(200, str(ord(self.confirm)))
        return AgiReply(200, "0")

    async def exec(self, application: str, options: str = "", **_kw: object) -> AgiReply:
        return AgiReply(200, "0")

    async def get_full_variable(self, expression: str) -> str | None:
        return f"OK:{self.dob}"


async def test_the_read_back_plays_while_the_value_commits_and_waits_before_the_answer(
        db, tmp_path: Path, monkeypatch):
    lib = PromptLibrary(tmp_path / "sounds", lambda p: p.name, tmp_path / "cache")
    lib._file_item = lambda text, voice=en.VOICE: PlayFile(  # type: ignore[method-assign]
        lib.tts_file(text, voice).name)  # no speech made: the names are what counts
    call_id = await calls.start_call(db, uniqueid="u1", node="n", dialled="+16175550100",
                                     forwarded_from="", caller="", started_at=calls.now())
    held = asyncio.Event()
    real_save = calls.save_intake

    async def slow_save(*args: Any, **kw: Any) -> None:  # a busy database's commit
        await held.wait()
        await real_save(*args, **kw)

    monkeypatch.setattr(intake.calls, "save_intake", slow_save)
    channel = Channel("01021990", "1")
    s = _session(channel, SimpleNamespace(db=db, speech=lib), call_id)
    step = asyncio.ensure_future(intake.ask_dob(s))
    await asyncio.wait_for(channel.read_back.wait(), 10)
    assert not held.is_set()  # the caller hears the read-back before the commit ends
    await _spin()
    assert not step.done()  # the "1" is not acted on: the date is not committed yet
    held.set()
    await asyncio.wait_for(step, 10)
    await s.settle()
    shown = await calls.show_call(db, call_id)
    assert shown is not None
    assert shown["intake"]["dob"]["value"] == "1990-01-02"
    assert shown["intake"]["dob"]["confirmed"] is True
    kinds = [e["kind"] for e in shown["timeline"]]
    assert kinds.index("intake.dob.captured") < kinds.index("intake.dob.confirmed")
