"""A whole after-hours call never blocks the event loop (issue 16: one loop serves every call).

The real inbound flow runs over a real FastAGI socket (tests/agi/fake_asterisk_agi.py's
fake Asterisk plays the caller: accepts its caller ID, keys and confirms a date of birth,
records a voiced name and reason, picks "routine") against a real SQLite database, with
asyncio's debug mode on. Two checks per loop callback:

- asyncio's own slow-callback warning (loop.slow_callback_duration, wall time) at a
  generous 1 s: a blocking call (a subprocess, a sleep, a lock held by a thread) shows up
  there, while a loaded machine's scheduling delays stay far below it;
- the callback's CPU time on the loop's thread (time.thread_time, which another process's
  load does not inflate) at 50 ms: work that belongs in a thread or at rules load.

A control test shows that each check does catch what it is meant to.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import struct
import sys
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from ivr.flows import inbound
from ivr.flows.runner import run_call
from ivr.flows.speech import PromptLibrary
from ivr.pbx import prompts as tts
from ivr.records import calls
from ivr.rules import load_rules

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agi"))
from fake_asterisk_agi import FakeCall, agi_server, header_block, split_args  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
EVENING = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)  # Monday 21:30 in Boston: closed
WALL_LIMIT_S = 1.0
CPU_LIMIT_S = 0.05
#: The caller's keys, in the order the flow waits for them (None: let it time out).
KEYS = ["1", None, *"01021990", "1", "4"]


@contextmanager
def watched_loop() -> Iterator[list[str]]:
    """Debug mode and the two checks on the running loop; yields what they found."""
    loop = asyncio.get_running_loop()
    found: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: found.append(record.getMessage()) \
        if "took" in record.getMessage() else None  # type: ignore[method-assign]
    asyncio_log = logging.getLogger("asyncio")
    run = asyncio.events.Handle._run
    # Garbage collection runs inside whichever callback allocates when it is due, and
    # scans the whole test process (a pytest worker's heap, after hundreds of tests): a
    # full collection there took 265 ms of a journal writer's step (run h32). Its time
    # is not the flow's work, so it is left out.
    in_gc = [0.0, 0.0]  # thread time when the collection began, total spent in them

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            in_gc[0] = time.thread_time()
        else:
            in_gc[1] += time.thread_time() - in_gc[0]

    def timed(self: asyncio.events.Handle) -> None:
        t0, gc0 = time.thread_time(), in_gc[1]
        run(self)
        spent = time.thread_time() - t0 - (in_gc[1] - gc0)
        if spent > CPU_LIMIT_S:
            task = getattr(self._callback, "__self__", None)  # the task a wake-up resumed
            found.append(f"{task if task is not None else self!r} used "
                         f"{spent * 1000:.0f} ms of CPU on the loop")

    was_debug, was_slow = loop.get_debug(), loop.slow_callback_duration
    loop.set_debug(True)
    loop.slow_callback_duration = WALL_LIMIT_S
    asyncio_log.addHandler(handler)
    asyncio.events.Handle._run = timed  # type: ignore[method-assign]
    gc.callbacks.append(on_gc)
    try:
        yield found
    finally:
        gc.callbacks.remove(on_gc)
        asyncio.events.Handle._run = run  # type: ignore[method-assign]
        asyncio_log.removeHandler(handler)
        loop.set_debug(was_debug)
        loop.slow_callback_duration = was_slow


def voiced_wav(path: Path, seconds: float = 1.0) -> None:
    """A 440 Hz tone at speech level: the flow's voice check keeps it."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 8000 * 2 * math.pi
                                                                      * 440)))
                               for i in range(int(8000 * seconds))))


async def play_caller(call: FakeCall) -> None:
    """Answer every command as Asterisk would for a caller who does the whole intake."""
    keys = list(KEYS)
    read = ""
    while True:
        try:
            words = await call.args(timeout=30)
        except AssertionError:  # the controller closed the socket: the call is over
            return
        name = " ".join(words[:2]).upper()
        if name == "GET FULL" and "READSTATUS" in words[3]:  # what the Read took
            await call.send(f"200 result=1 ({'OK' if read else 'TIMEOUT'}:{read})")
        elif name == "GET FULL":
            await call.send("200 result=1 (+16175550100||)")
        elif name == "EXEC READ":  # a question, its keys taken by Asterisk
            _var, _files, most, options, *_ = words[2].split(",")
            read = keys.pop(0) or "" if keys else ""
            while "t" not in options and keys and keys[0] is not None \
                    and len(read) < int(most):
                read += str(keys.pop(0))
            if "t" not in options and len(read) < int(most) and keys and keys[0] is None:
                keys.pop(0)  # the pause that ended the keys
            await call.send("200 result=0")
        elif name in ("WAIT FOR", "GET OPTION"):  # a key after the prompt (if any)
            key = keys.pop(0) if keys else None
            await call.send(f"200 result={ord(key) if key else 0}")
        elif name == "GET DATA":  # Asterisk collecting up to words[4] keys itself
            typed = ""
            while keys and keys[0] is not None and len(typed) < int(words[4]):
                typed += str(keys.pop(0))
            await call.send(f"200 result={typed}")
        elif name == "GOSUB IVR-RECORD":  # question, beep, recording
            voiced_wav(Path(words[4].split(",")[1] + ".wav"))
            await call.send("200 result=0 Gosub complete")
        elif name == "SET VARIABLE" and words[2] == "IVR_RESULT":
            await call.send("200 result=1")
            await call.close()
            return
        else:  # STREAM FILE, SAY *, SET VARIABLE: played to the end, no key
            await call.send("200 result=0 endpos=1000")


@pytest.fixture
def services(db, tmp_path, monkeypatch):
    rules = load_rules(REPO / "routing_rules", now=EVENING).rules
    # Prompt files without espeak-ng: an empty file per text (Asterisk never plays them).
    monkeypatch.setattr(tts, "install", lambda _text, dest, _cache, *_voice: (
        dest.parent.mkdir(parents=True, exist_ok=True), dest.touch()))
    lib = PromptLibrary(tmp_path / "sounds", str, tmp_path / "cache")
    lib.prepare_rules(rules)
    (tmp_path / "spool" / "ivr-intake").mkdir(parents=True)
    pbx = SimpleNamespace(spool_dir=tmp_path / "spool", inner_path=str)
    # Transcription is off here: its worker process is not what this test measures.
    transcriber = SimpleNamespace(submit=lambda *_a: None, pending=lambda *_a: False)
    return SimpleNamespace(rules=rules, db=db, clock=lambda: EVENING, speech=lib, pbx=pbx,
                           transcriber=transcriber,
                           settings=SimpleNamespace(instance="loop-test",
                                                    recordings_dir=tmp_path / "rec"),
                           dialer=None)


async def one_call(server, uniqueid: str) -> None:
    call = await FakeCall.connect(server.port)
    await call.send_raw(header_block(uniqueid=uniqueid).replace(
        b"agi_callerid: 15555550123", b"agi_callerid: +16175550142"))
    await asyncio.wait_for(play_caller(call), 60)
    while server.calls:  # the handler's last commit after the socket closed
        await asyncio.sleep(0.01)


async def test_a_whole_intake_never_blocks_the_event_loop(services):
    async def handler(channel):
        await run_call(inbound.handle, services, channel)

    async with agi_server({"inbound": handler}) as server:
        # The process's first call pays one-time costs (SQLAlchemy configures its mappers
        # and compiles each statement once, phonenumbers loads a region's metadata): not
        # what every call costs, so a first call warms the process up, unwatched.
        await one_call(server, "warm-1")
        with watched_loop() as found:
            await one_call(server, "node-1795722896.1")
    rows = await calls.list_calls(services.db)
    assert len(rows) == 2
    row = next(r for r in rows if r["uniqueid"] == "node-1795722896.1")
    assert (row["disposition"], row["result"]) == ("routine", "done")
    assert row["intake"]["dob"]["value"] == "1990-01-02" and row["intake"]["dob"]["confirmed"]
    assert row["intake"]["callback"]["confirmed"]
    assert {"name", "reason"} <= set(row["intake"])
    assert found == [], found


async def test_the_checks_catch_a_blocking_or_busy_callback():
    def busy() -> None:
        t0 = time.thread_time()
        while time.thread_time() - t0 < CPU_LIMIT_S * 2:
            pass

    with watched_loop() as found:
        loop = asyncio.get_running_loop()
        loop.call_soon(time.sleep, WALL_LIMIT_S * 1.2)  # blocks: wall time only
        loop.call_soon(busy)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert any("took" in f for f in found), found
    assert any("of CPU on the loop" in f for f in found), found


def test_the_fake_caller_splits_like_asterisk():
    assert split_args('GOSUB ivr-record s 1 "/x/y,/z,5,8"')[4] == "/x/y,/z,5,8"
