"""FastAGI server: handshake failures, routing, concurrency and shutdown, on a real port."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_asterisk_agi import (  # noqa: E402
    UNIQUEID,
    FakeCall,
    agi_server,
    assert_no_tasks_left,
    header_block,
    header_lines,
    no_leaked_tasks,
)

from ivr.agi.protocol import MAX_LINE, AgiChannel

__all__ = ["no_leaked_tasks"]


async def sentinel_route(channel: AgiChannel) -> None:
    """The smallest real flow: read a variable, then set the sentinel as the last act."""
    did = await channel.get_variable("IVR_DID")
    await channel.set_variable("IVR_RESULT", f"done-{did}")


async def play_sentinel_call(port: int, did: str = "15555550100", **headers: object) -> None:
    call = await FakeCall.dial(port, **headers)
    assert await call.args() == ["GET", "VARIABLE", "IVR_DID"]
    await call.send(f"200 result=1 ({did})")
    assert await call.args() == ["SET", "VARIABLE", "IVR_RESULT", f"done-{did}"]
    await call.send("200 result=1")
    assert await call.remaining() == []
    await call.close()


class Ticker:
    """Counts 10 ms ticks: if the event loop is blocked, the count stalls."""

    def __init__(self) -> None:
        self.ticks = 0
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.ticks += 1

    async def __aenter__(self) -> Ticker:
        self.task = asyncio.create_task(self._run(), name="ticker")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def test_headers_are_parsed_like_asterisk_sends_them():
    lines = header_lines()
    assert lines[:3] == ["agi_network: yes", "agi_network_script: inbound",
                         "agi_request: agi://127.0.0.1:4573/inbound"]


async def test_headers_reach_the_handler(no_leaked_tasks):
    seen = {}

    async def route(channel: AgiChannel) -> None:
        seen.update(channel.headers, route=channel.route, uniqueid=channel.uniqueid)
        await sentinel_route(channel)

    async with agi_server({"inbound": route}) as server:
        await play_sentinel_call(server.port)
    assert seen["route"] == "inbound" and seen["uniqueid"] == UNIQUEID
    assert seen["channel"] == "PJSIP/trunk-00000001"
    assert seen["request"] == "agi://127.0.0.1:4573/inbound"
    assert seen["accountcode"] == "" and seen["network"] == "yes"


@pytest.mark.parametrize("partial", [
    b"",
    b"agi_network: yes\nagi_network_script: inbound\nagi_request: agi://127.0.0.1:45",
    header_block()[:-1],  # every header, but not the blank line
])
async def test_disconnect_during_handshake_does_not_block_the_loop(no_leaked_tasks, partial,
                                                                   caplog):
    handled = []

    async def route(channel: AgiChannel) -> None:
        handled.append(channel.uniqueid)
        await sentinel_route(channel)

    caplog.set_level(logging.INFO, logger="ivr.agi.server")
    async with agi_server({"inbound": route}, handshake_timeout=5.0) as server, \
            Ticker() as ticker:
        bad = await FakeCall.connect(server.port)
        if partial:
            await bad.send_raw(partial)
        await bad.close()
        # A read that blocked the loop would hold it for the handshake's 5 s: three
        # 10 ms ticks must come well within half of that (a starved machine can delay
        # a tick by some hundreds of ms, never by seconds in a row).
        before, started = ticker.ticks, time.monotonic()
        while ticker.ticks - before < 3 and time.monotonic() - started < 2.5:
            await asyncio.sleep(0.01)
        assert ticker.ticks - before >= 3, "event loop stalled after a half handshake"
        # The next call is served right away.
        await asyncio.wait_for(play_sentinel_call(server.port, uniqueid="node-1795722896.1"),
                               2)
        assert handled == ["node-1795722896.1"]
        assert not server.calls
    assert "before its headers" in caplog.text


async def test_handshake_that_never_completes_times_out(no_leaked_tasks, caplog):
    called = []

    async def route(channel: AgiChannel) -> None:
        called.append(channel)

    caplog.set_level(logging.INFO, logger="ivr.agi.server")
    async with agi_server({"inbound": route}, handshake_timeout=0.2) as server:
        loop = asyncio.get_running_loop()
        stalled = await FakeCall.connect(server.port)
        await stalled.send_raw(header_block()[:-1])  # no blank line; socket stays open
        started = loop.time()
        assert await stalled.remaining(timeout=2) == []  # the server hung up on us
        assert 0.15 < loop.time() - started < 1.5
        await stalled.close()
        assert not server.calls
    assert called == []
    assert "timed out" in caplog.text


async def test_overlong_header_line_is_refused(no_leaked_tasks):
    async def route(channel: AgiChannel) -> None:
        raise AssertionError("must not run")

    async with agi_server({"inbound": route}) as server:
        call = await FakeCall.connect(server.port)
        await call.send_raw(b"agi_network: yes\nagi_callerid: " + b"9" * (MAX_LINE + 10) + b"\n")
        assert await call.remaining() == []
        await call.close()


async def test_unknown_route_closes_without_a_sentinel(no_leaked_tasks, caplog):
    async def route(channel: AgiChannel) -> None:
        raise AssertionError("must not run")

    caplog.set_level(logging.WARNING, logger="ivr.agi.server")
    async with agi_server({"inbound": route}) as server:
        call = await FakeCall.dial(server.port, script="no-such-flow")
        # Not one command, in particular no SET VARIABLE IVR_RESULT: the dialplan's
        # fallback takes the call because the sentinel stays unset.
        assert await call.remaining() == []
        await call.close()
    assert "unknown-route" in caplog.text and UNIQUEID in caplog.text


async def test_route_ignores_query_and_slashes(no_leaked_tasks):
    async with agi_server({"inbound": sentinel_route}) as server:
        await play_sentinel_call(server.port, script="inbound?practice=sunny")


async def test_many_concurrent_calls_get_their_own_replies(no_leaked_tasks):
    seen: dict[str, str] = {}

    async def route(channel: AgiChannel) -> None:
        token = await channel.get_variable("IVR_TOKEN")
        await asyncio.sleep(0)  # let other calls interleave between commands
        digits = await channel.get_data("ivr/enter-number", 2000, 4)
        seen[channel.uniqueid] = f"{token}:{digits[0]}"
        await channel.set_variable("IVR_RESULT", f"{token}:{digits[0]}")

    async def one_call(port: int, n: int) -> None:
        call = await FakeCall.dial(port, uniqueid=f"node-1795722896.{n}",
                                   channel=f"PJSIP/trunk-{n:08x}")
        assert await call.args() == ["GET", "VARIABLE", "IVR_TOKEN"]
        await asyncio.sleep((n % 7) / 1000)  # replies come back in a scrambled order
        await call.send(f"200 result=1 (token-{n})")
        assert (await call.args())[:2] == ["GET", "DATA"]
        await asyncio.sleep(((n * 3) % 5) / 1000)
        await call.send(f"200 result={n:04d}")
        assert await call.args() == ["SET", "VARIABLE", "IVR_RESULT", f"token-{n}:{n:04d}"]
        await call.send("200 result=1")
        assert await call.remaining() == []
        await call.close()

    async with agi_server({"inbound": route}) as server:
        await asyncio.wait_for(asyncio.gather(*(one_call(server.port, n) for n in range(50))),
                               10)
        assert not server.calls
    assert seen == {f"node-1795722896.{n}": f"token-{n}:{n:04d}" for n in range(50)}


async def test_stop_cancels_calls_in_progress_and_leaves_no_tasks(no_leaked_tasks, caplog):
    parked = asyncio.Event()
    cancelled: list[str] = []
    waiting = 0

    async def route(channel: AgiChannel) -> None:
        nonlocal waiting
        try:
            waiting += 1
            if waiting == 3:
                parked.set()
            await channel.get_variable("IVR_DID")  # Asterisk never answers
        except asyncio.CancelledError:
            cancelled.append(channel.uniqueid)
            raise

    server_cm = agi_server({"inbound": route}, command_timeout=30.0)
    server = await server_cm.__aenter__()
    calls = [await FakeCall.dial(server.port, uniqueid=f"node-1795722896.{n}")
             for n in range(3)]
    for call in calls:
        await call.command()
    await asyncio.wait_for(parked.wait(), 2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await server_cm.__aexit__(None, None, None)  # AgiServer.stop()
    assert loop.time() - started < 1.0
    await asyncio.sleep(0.01)  # asyncio's own done-callbacks for the calls run now
    # A clean shutdown: no "Exception in callback ..." from asyncio for cancelled calls.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert sorted(cancelled) == [f"node-1795722896.{n}" for n in range(3)]
    assert not server.calls
    await assert_no_tasks_left(timeout=0.2)
    for call in calls:  # every socket was closed by the server
        assert await call.remaining() == []
        await call.close()
    # Nobody listens any more.
    with pytest.raises(OSError):
        await FakeCall.connect(server.port)


async def test_stop_lets_short_calls_finish_within_the_drain(no_leaked_tasks):
    started = asyncio.Event()

    async def route(channel: AgiChannel) -> None:
        started.set()
        await sentinel_route(channel)

    server_cm = agi_server({"inbound": route})
    server = await server_cm.__aenter__()
    call = await FakeCall.dial(server.port)
    await asyncio.wait_for(started.wait(), 2)

    async def asterisk_side() -> None:
        assert await call.args() == ["GET", "VARIABLE", "IVR_DID"]
        await asyncio.sleep(0.05)
        await call.send("200 result=1 (15555550100)")
        assert await call.args() == ["SET", "VARIABLE", "IVR_RESULT", "done-15555550100"]
        await call.send("200 result=1")
        assert await call.remaining() == []

    peer = asyncio.create_task(asterisk_side())
    await server.stop(drain_seconds=2)
    await peer  # the call ended normally, with its sentinel
    await call.close()
    await server_cm.__aexit__(None, None, None)


async def test_failing_handler_does_not_take_the_server_down(no_leaked_tasks):
    async def broken(channel: AgiChannel) -> None:
        raise RuntimeError("bug in a flow")

    async with agi_server({"broken": broken, "inbound": sentinel_route}) as server:
        call = await FakeCall.dial(server.port, script="broken")
        assert await call.remaining() == []
        await call.close()
        await play_sentinel_call(server.port)
        assert not server.calls
