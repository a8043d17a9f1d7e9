"""The FastAGI header reader is strict: the shapes a header injection takes are refused.

A caller who gets a newline into `agi_callerid` (a `%0A` in the SIP From user part) makes
the rest of that value a header line of its own. The dialplan reduces caller values
before AGI() (tests/e2e/test_trust_boundary.py shows it through the real PBX); these tests
feed the reader the bytes that would arrive if it did not, on a real port.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_asterisk_agi import (  # noqa: E402
    UNIQUEID,
    FakeCall,
    agi_server,
    header_lines,
    no_leaked_tasks,
)

from ivr.agi.protocol import AgiChannel, AgiHeaderRefused, check_header_line

__all__ = ["no_leaked_tasks"]

VICTIM = "node-1795722800.7"


def _with_injected_callerid(value: str) -> bytes:
    """The header block as res_agi would write it with `value` as the caller ID."""
    lines = [f"agi_callerid: {value}" if line.startswith("agi_callerid:") else line
             for line in header_lines()]
    return ("\n".join(lines) + "\n\n").encode()


INJECTIONS = {
    "uniqueid": (f"+16175550162\nagi_uniqueid: {VICTIM}", "repeated-uniqueid"),
    "network_script": ("+16175550162\nagi_network_script: bench", "repeated-network_script"),
    "early_end": ("+16175550162\n\nagi_uniqueid: x", None),
    "not_a_header": ("+16175550162\nGET VARIABLE X", "line-not-a-header"),
    "carriage_return": ("+16175550162\rX", "control-character-in-callerid"),
    "nul": ("+16175550162\0", "control-character-in-callerid"),
}


async def _refused_call(block: bytes) -> tuple[list[str], list[tuple[str, str, str]], int]:
    handled: list[str] = []
    refused: list[tuple[str, str, str]] = []

    async def route(channel: AgiChannel) -> None:
        handled.append(channel.uniqueid)
        await channel.set_variable("IVR_RESULT", "done")

    async def on_refused(reason: str, uniqueid: str, route_name: str) -> None:
        refused.append((reason, uniqueid, route_name))

    async with agi_server({"inbound": route, "bench": route}) as server:
        server.on_refused = on_refused
        call = await FakeCall.connect(server.port)
        await call.send_raw(block)
        # Nothing is written back: the server closes, the dialplan's fallback follows.
        assert await call.remaining() == []
        await call.close()
        count = server.refused
    return handled, refused, count


@pytest.mark.parametrize("name", sorted(INJECTIONS))
async def test_an_injected_header_never_reaches_a_route(no_leaked_tasks, name):
    value, reason = INJECTIONS[name]
    handled, refused, count = await _refused_call(_with_injected_callerid(value))
    assert handled == []
    assert count == 1 and len(refused) == 1
    if reason is not None:
        assert refused[0][0] == reason
    else:  # the block ended before the headers after callerid: cut short
        assert refused[0][0].startswith("block-ends-before-")
    # The victim's uniqueid is never what the refusal names.
    assert VICTIM not in refused[0][1]


async def test_an_unknown_route_is_refused_and_reported(no_leaked_tasks):
    block = ("\n".join(header_lines(script="screen2")) + "\n\n").encode()
    handled, refused, count = await _refused_call(block)
    assert handled == [] and count == 1
    assert refused == [("unknown-route", UNIQUEID, "screen2")]


@pytest.mark.parametrize("line, reason", [
    ("agi_uniqueid: ../../etc/passwd", "bad-uniqueid"),
    ("agi_uniqueid: 1.2 3", "bad-uniqueid"),
    ("agi_uniqueid: ", "bad-uniqueid"),
    ("agi_network_script: ../inbound", "bad-network-script"),
    ("agi_network_script: INBOUND", "bad-network-script"),
    ("agi_callerid: a\x1bb", "control-character-in-callerid"),
    ("agi_callerid: a\x7fb", "control-character-in-callerid"),
    ("callerid: +1", "line-not-a-header"),
    ("", "line-not-a-header"),
])
def test_header_lines_without_their_form_are_refused(line, reason):
    with pytest.raises(AgiHeaderRefused) as info:
        check_header_line(line, {})
    assert info.value.reason == reason


@pytest.mark.parametrize("uniqueid", ["1796117475.4", "t22929-1796117475.4",
                                      "ivrleg-a8a5f1aa42634f38b873c6f8b9c6a4aa"])
def test_the_uniqueids_asterisk_and_our_originates_give_are_accepted(uniqueid):
    headers: dict[str, str] = {}
    check_header_line(f"agi_uniqueid: {uniqueid}", headers)
    assert headers == {"uniqueid": uniqueid}


def test_unknown_header_names_are_ignored_not_refused():
    headers: dict[str, str] = {}
    check_header_line("agi_future_header: 1", headers)
    check_header_line("agi_arg_1: x", headers)
    assert headers == {"arg_1": "x"}


def test_a_repeated_header_is_refused_even_when_the_value_is_the_same():
    headers: dict[str, str] = {}
    check_header_line(f"agi_uniqueid: {UNIQUEID}", headers)
    with pytest.raises(AgiHeaderRefused) as info:
        check_header_line(f"agi_uniqueid: {UNIQUEID}", headers)
    assert info.value.reason == "repeated-uniqueid" and info.value.uniqueid == UNIQUEID


async def test_the_next_call_is_served_after_a_refusal(no_leaked_tasks):
    served: list[str] = []

    async def route(channel: AgiChannel) -> None:
        served.append(channel.uniqueid)
        await channel.set_variable("IVR_RESULT", "done")

    async with agi_server({"inbound": route}) as server:
        bad = await FakeCall.connect(server.port)
        await bad.send_raw(_with_injected_callerid(f"1\nagi_uniqueid: {VICTIM}"))
        assert await bad.remaining() == []
        await bad.close()
        good = await FakeCall.dial(server.port)
        assert await good.args() == ["SET", "VARIABLE", "IVR_RESULT", "done"]
        await good.send("200 result=1")
        await good.close()
        await asyncio.sleep(0)
    assert served == [UNIQUEID]
