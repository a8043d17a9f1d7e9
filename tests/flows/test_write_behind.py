"""A call's writes are committed while the caller hears the next prompt (Session.soon):
in the order taken, none dropped after a failure, and every one of them committed
before the flow acts on the caller's next answer."""

from __future__ import annotations

import asyncio
import math
import struct
import threading
import wave
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
    """Answers the date of birth's Read and its read-back's (a Read of the date's
    sound files); notes when the read-back starts."""

    def __init__(self, dob: str, confirm: str) -> None:
        self.dob, self.confirm = dob, confirm
        self.uniqueid, self.hung_up = "1700000000.5", False
        self.read_back = asyncio.Event()

    async def command(self, name: str, *args: object, **_kw: object) -> AgiReply:
        return AgiReply(200, "0")

    async def exec(self, application: str, options: str = "", **_kw: object) -> AgiReply:
        if "digits/mon-" in options:
            self.read_back.set()
        return AgiReply(200, "0")

    async def get_full_variable(self, expression: str) -> str | None:
        return f"OK:{self.confirm if self.read_back.is_set() else self.dob}"


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


def _voiced_wav(path: Path, seconds: float = 1.0) -> Path:
    """A loud 440 Hz tone as the spool's 16-bit mono WAV (a voice to the voice check)."""
    frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / 8000)))
                      for i in range(int(seconds * 8000)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(frames)
    return path


async def _recording_call(db: Any, tmp_path: Path) -> tuple[Session, list[str]]:
    call_id = await calls.start_call(db, uniqueid="u2", node="n", dialled="+16175550100",
                                     forwarded_from="", caller="", started_at=calls.now())
    submitted: list[str] = []
    services = SimpleNamespace(
        db=db, settings=SimpleNamespace(recordings_dir=tmp_path / "recordings"),
        transcriber=SimpleNamespace(submit=lambda _call, field, *_a: submitted.append(field)))
    return _session(None, services, call_id), submitted


async def test_a_recording_is_sealed_while_the_next_question_plays(db, tmp_path: Path,
                                                                   monkeypatch):
    s, submitted = await _recording_call(db, tmp_path)
    spooled = _voiced_wav(tmp_path / "spool" / f"{s.call_id}-name-1.wav")
    gate = threading.Event()
    real_take = intake.take

    def held_take(*args: Any) -> Path:  # a burst's seals queued in the threads
        assert gate.wait(30)
        return real_take(*args)

    monkeypatch.setattr(intake, "take", held_take)
    # The voice check is all the flow waits for: it goes on with the seal still held.
    assert await intake._keep(s, "name", spooled, 1, partial=False) is True
    assert spooled.exists() and submitted == []
    gate.set()
    await s.settle()  # the next answer is taken only after the seal and its rows
    dest = tmp_path / "recordings" / s.call_id / "name.wav.enc"
    assert dest.exists() and not spooled.exists() and submitted == ["name"]
    shown = await calls.show_call(db, s.call_id)
    assert shown is not None
    assert shown["intake"]["name"]["recording_path"] == str(dest)


async def test_a_seal_that_fails_is_in_the_timeline_and_the_call_goes_on(db, tmp_path: Path,
                                                                         monkeypatch):
    s, submitted = await _recording_call(db, tmp_path)
    spooled = _voiced_wav(tmp_path / "spool" / f"{s.call_id}-reason-1.wav")

    def full_disk(*_args: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(intake, "take", full_disk)
    assert await intake._keep(s, "reason", spooled, 1, partial=False) is True
    await s.settle()  # not raised: the caller's call goes on to the menu
    shown = await calls.show_call(db, s.call_id)
    assert shown is not None
    assert "intake.reason.unsealed" in [e["kind"] for e in shown["timeline"]]
    assert "reason" not in shown["intake"] and submitted == []
    assert spooled.exists()  # left where Asterisk wrote it, for the operator
