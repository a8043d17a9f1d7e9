"""FastAGI wire protocol: replies, quoting, HANGUP, 520 blocks, timeouts, dead channels.

The stream tests run the real AgiServer and play Asterisk's side byte for byte with a
fake client on 127.0.0.1 (fake_asterisk_agi.py); each asserts which reply went to which
command, since an off-by-one there would give one caller's answer to the next prompt.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from fake_asterisk_agi import (  # noqa: E402
    USAGE_520,
    FakeCall,
    agi_server,
    attempt,
    no_leaked_tasks,
    split_args,
)

from ivr.agi.protocol import (
    AgiChannel,
    AgiCommandError,
    AgiDisconnected,
    AgiHangup,
    AgiReply,
    AgiTimeout,
    build_command,
    parse_reply,
    quote,
)

__all__ = ["no_leaked_tasks"]  # the fixture is used by name below


# --- reply parsing ----------------------------------------------------------------------

@pytest.mark.parametrize("line, code, result, data, extra", [
    ("200 result=1 (value)", 200, "1", "value", {}),
    ("200 result=0 endpos=12345", 200, "0", None, {"endpos": "12345"}),
    ("200 result=49 endpos=8000", 200, "49", None, {"endpos": "8000"}),
    ("200 result= (timeout)", 200, "", "timeout", {}),
    ("200 result=1234", 200, "1234", None, {}),
    ("200 result=-1", 200, "-1", None, {}),
    ("200 result=1 (Dr. Lee (on call) until 8 am)", 200, "1", "Dr. Lee (on call) until 8 am",
     {}),
    ("200 result=1 (a b (c)) endpos=77", 200, "1", "a b (c)", {"endpos": "77"}),
    ("200 result=0 (timeout) endpos=0", 200, "0", "timeout", {"endpos": "0"}),
    ("200 result=1 ()", 200, "1", "", {}),
    ("510 Invalid or unknown command", 510, "", "Invalid or unknown command", {}),
    ("511 Command Not Permitted on a dead channel or intercept routine", 511, "",
     "Command Not Permitted on a dead channel or intercept routine", {}),
])
def test_parse_reply(line, code, result, data, extra):
    reply = parse_reply(line)
    assert (reply.code, reply.result, reply.data, reply.extra) == (code, result, data, extra)


def test_result_int():
    assert parse_reply("200 result=49 endpos=8000").result_int == ord("1")
    assert parse_reply("200 result=-1").result_int == -1
    assert parse_reply("200 result= (timeout)").result_int == -1  # not a number


@pytest.mark.parametrize("line", ["", "HANGUP", "hello world", "20 result=1", "2000 result=1"])
def test_unparseable_reply_means_the_stream_is_lost(line):
    with pytest.raises(AgiDisconnected):
        parse_reply(line)


# --- quoting and command lines ------------------------------------------------------------

@pytest.mark.parametrize("value, quoted", [
    ("plain", '"plain"'),
    ("two words", '"two words"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ('\\"', '"\\\\\\""'),
    ("", '""'),
    (42, '"42"'),
])
def test_quote(value, quoted):
    assert quote(value) == quoted


@pytest.mark.parametrize("bad", ["a\nEXEC Dial PJSIP/x", "a\r", "\n", "nul\0byte", "x\r\nHANGUP"])
def test_quote_refuses_line_breaks_and_nul(bad):
    with pytest.raises(ValueError):
        quote(bad)
    with pytest.raises(ValueError):
        build_command("SET VARIABLE", ("IVR_NOTE", bad))


@pytest.mark.parametrize("name", ["answer", "ANSWER\nHANGUP", "EXEC;", "", "A", " ANSWER",
                                  "ANSWER ", "GET-VARIABLE", "SET VARIABLE\0"])
def test_build_command_refuses_bad_names(name):
    with pytest.raises(ValueError):
        build_command(name, ())


def test_build_command_line():
    line = build_command("STREAM FILE", ("ivr/welcome", "12"))
    assert line == 'STREAM FILE "ivr/welcome" "12"\n'
    assert split_args(line[:-1]) == ["STREAM", "FILE", "ivr/welcome", "12"]
    assert build_command("ANSWER", ()) == "ANSWER\n"


@given(st.text(alphabet=st.characters(blacklist_characters="\r\n\0",
                                      blacklist_categories=("Cs",))))
def test_quoted_argument_reaches_asterisk_unchanged(value):
    """Whatever a caller-derived value holds, Asterisk sees exactly one argument."""
    line = build_command("SET VARIABLE", ("IVR_NOTE", value))
    assert line.count("\n") == 1 and line.endswith("\n")
    assert split_args(line[:-1]) == ["SET", "VARIABLE", "IVR_NOTE", value]


# --- on the wire: a scripted handler against a scripted fake Asterisk ------------------------

class Script:
    """A route whose handler runs `steps(channel)` and records what each step returned."""

    def __init__(self, steps):
        self.steps = steps
        self.results: list[object] = []
        self.done = asyncio.Event()
        self.channel: AgiChannel | None = None

    async def __call__(self, channel: AgiChannel) -> None:
        self.channel = channel
        try:
            await self.steps(channel, self.results)
        finally:
            self.done.set()

    async def finished(self, timeout: float = 2.0) -> list[object]:
        await asyncio.wait_for(self.done.wait(), timeout)
        return self.results


@pytest.mark.parametrize("segments", ["one-segment", "two-segments"])
async def test_hangup_line_is_not_taken_as_the_reply(no_leaked_tasks, segments):
    async def steps(ch, out):
        out.append(await attempt(ch.stream_file("ivr/welcome", "12")))
        out.append(await attempt(ch.get_variable("IVR_NEXT")))  # refused locally
        out.append(await attempt(ch.command("GET VARIABLE", "DIALSTATUS",
                                            allow_after_hangup=True)))
        out.append(await attempt(ch.set_variable("IVR_RESULT", "hangup",
                                                 allow_after_hangup=True)))

    script = Script(steps)
    async with agi_server({"inbound": script}) as server:
        call = await FakeCall.dial(server.port)
        assert await call.args() == ["STREAM", "FILE", "ivr/welcome", "12"]
        if segments == "one-segment":
            await call.send("HANGUP", "200 result=0 endpos=12345")
        else:
            await call.send("HANGUP")
            await asyncio.sleep(0.02)
            await call.send("200 result=0 endpos=12345")
        # GET VARIABLE IVR_NEXT was never sent: the next line is the allowed one.
        assert await call.args() == ["GET", "VARIABLE", "DIALSTATUS"]
        await call.send("200 result=1 (ANSWER)")
        assert await call.args() == ["SET", "VARIABLE", "IVR_RESULT", "hangup"]
        await call.send("200 result=1")
        assert await call.remaining() == []
        results = await script.finished()
        await call.close()
    assert isinstance(results[0], AgiHangup)
    assert isinstance(results[1], AgiHangup)
    assert isinstance(results[2], AgiReply) and results[2].data == "ANSWER"
    assert results[3] is None
    assert script.channel.hung_up and script.channel.hangup_event.is_set()


async def test_hangup_between_commands_stops_the_next_one_before_sending(no_leaked_tasks):
    answered = asyncio.Event()

    async def steps(ch, out):
        out.append(await attempt(ch.answer()))
        answered.set()
        await asyncio.wait_for(ch.hangup_event.wait(), 2)
        out.append(await attempt(ch.stream_file("ivr/menu", "123")))
        out.append(await attempt(ch.set_variable("IVR_RESULT", "hangup",
                                                 allow_after_hangup=True)))

    script = Script(steps)
    async with agi_server({"inbound": script}) as server:
        call = await FakeCall.dial(server.port)
        assert await call.command() == "ANSWER"
        await call.send("200 result=0")
        await asyncio.wait_for(answered.wait(), 2)
        await call.send("HANGUP")  # no command pending
        assert await call.args() == ["SET", "VARIABLE", "IVR_RESULT", "hangup"]
        await call.send("200 result=1")
        assert await call.remaining() == []
        results = await script.finished()
        await call.close()
    assert results[0] is None
    assert isinstance(results[1], AgiHangup)
    assert results[2] is None
    assert call.commands == ["ANSWER", 'SET VARIABLE "IVR_RESULT" "hangup"']


@pytest.mark.parametrize("chunked", [False, True])
async def test_multiline_520_is_one_reply(no_leaked_tasks, chunked):
    async def steps(ch, out):
        out.append(await attempt(ch.command("DATABASE PUT", "ivrend")))
        out.append(await attempt(ch.get_variable("IVR_DID")))
        out.append(await attempt(ch.command("NOT A COMMAND")))
        out.append(await attempt(ch.get_variable("IVR_FWD")))

    script = Script(steps)
    async with agi_server({"inbound": script}) as server:
        call = await FakeCall.dial(server.port)
        assert await call.args() == ["DATABASE", "PUT", "ivrend"]
        if chunked:  # the block split at awkward places, as TCP may deliver it
            raw = "".join(f"{line}\n" for line in USAGE_520).encode()
            for cut in range(0, len(raw), 17):
                await call.send_raw(raw[cut:cut + 17])
                await asyncio.sleep(0.001)
        else:
            await call.send(*USAGE_520)
        assert await call.args() == ["GET", "VARIABLE", "IVR_DID"]
        await call.send("200 result=1 (15555550100)")
        assert await call.args() == ["NOT", "A", "COMMAND"]
        await call.send("510 Invalid or unknown command")
        assert await call.args() == ["GET", "VARIABLE", "IVR_FWD"]
        await call.send("200 result=0")
        assert await call.remaining() == []
        results = await script.finished()
        await call.close()
    err = results[0]
    assert isinstance(err, AgiCommandError) and err.code == 520
    assert "Usage: DATABASE PUT" in err.text and "End of proper usage" not in err.text
    assert results[1] == "15555550100"
    assert isinstance(results[2], AgiCommandError) and results[2].code == 510
    assert results[3] is None  # result=0: variable not set


async def test_command_without_reply_times_out_and_channel_refuses_more(no_leaked_tasks):
    timed_out = asyncio.Event()

    async def steps(ch, out):
        loop = asyncio.get_running_loop()
        started = loop.time()
        out.append(await attempt(ch.command("GET VARIABLE", "IVR_DID", timeout=0.2)))
        out.append(loop.time() - started)
        timed_out.set()
        await asyncio.sleep(0.05)  # the late reply below is on its way meanwhile
        out.append(await attempt(ch.get_variable("IVR_FWD")))
        out.append(await attempt(ch.set_variable("IVR_RESULT", "x", allow_after_hangup=True)))

    script = Script(steps)
    async with agi_server({"inbound": script}) as server:
        call = await FakeCall.dial(server.port)
        assert await call.args() == ["GET", "VARIABLE", "IVR_DID"]
        await asyncio.wait_for(timed_out.wait(), 2)
        try:
            await call.send("200 result=1 (late)")
        except ConnectionError:
            pass  # the controller already closed the socket: just as good
        assert await call.remaining() == []  # no further command, and the socket is closed
        results = await script.finished()
        await call.close()
    assert isinstance(results[0], AgiTimeout)
    assert 0.15 < results[1] < 1.0
    assert isinstance(results[2], AgiDisconnected)
    assert isinstance(results[3], AgiDisconnected)


async def test_caller_hangs_up_mid_command_then_socket_closes(no_leaked_tasks):
    closed = asyncio.Event()

    async def steps(ch, out):
        out.append(await attempt(ch.stream_file("ivr/after-hours", "")))
        await asyncio.wait_for(closed.wait(), 2)
        out.append(await attempt(ch.get_variable("IVR_DID")))
        out.append(await attempt(ch.set_variable("IVR_RESULT", "hangup",
                                                 allow_after_hangup=True)))

    script = Script(steps)
    async with agi_server({"inbound": script}) as server:
        call = await FakeCall.dial(server.port)
        assert await call.args() == ["STREAM", "FILE", "ivr/after-hours", ""]
        await call.send("HANGUP", "200 result=-1 endpos=4321")
        await call.close()
        closed.set()
        results = await script.finished()
    assert isinstance(results[0], AgiHangup)
    assert isinstance(results[1], AgiHangup)
    # Nothing to write to any more; which of the two depends on when EOF was read.
    assert isinstance(results[2], (AgiHangup, AgiDisconnected))


async def test_dead_channel_answers_511(no_leaked_tasks):
    async def steps(ch, out):
        out.append(await attempt(ch.stream_file("ivr/after-hours", "")))
        out.append(await attempt(ch.command("STREAM FILE", "ivr/bye", "",
                                            allow_after_hangup=True)))
        out.append(await attempt(ch.command("EXEC", "Playback", "ivr/bye",
                                            allow_after_hangup=True)))
        out.append(await attempt(ch.set_variable("IVR_RESULT", "hangup",
                                                 allow_after_hangup=True)))

    script = Script(steps)
    async with agi_server({"inbound": script}) as server:
        call = await FakeCall.dial(server.port)
        await call.command()
        await call.send("HANGUP", "200 result=-1 endpos=4321")
        assert (await call.args())[:2] == ["STREAM", "FILE"]
        await call.send("511 Command Not Permitted on a dead channel or intercept routine")
        assert (await call.args())[:2] == ["EXEC", "Playback"]
        await call.send("511 Command Not Permitted on a dead channel or intercept routine")
        assert await call.args() == ["SET", "VARIABLE", "IVR_RESULT", "hangup"]
        await call.send("200 result=1")
        assert await call.remaining() == []
        results = await script.finished()
        await call.close()
    assert [type(r) for r in results[:3]] == [AgiHangup] * 3
    assert results[3] is None


async def test_wrappers_interpret_replies(no_leaked_tasks):
    async def steps(ch, out):
        out.append(await ch.stream_file("ivr/menu", "12"))
        out.append(await ch.stream_file("ivr/menu", "12"))
        out.append(await ch.get_data("ivr/enter-number", 3000, 4))
        out.append(await ch.get_data("ivr/enter-number", 3000, 4))
        out.append(await ch.wait_for_digit(2000))
        out.append(await ch.get_full_variable("${CALLERID(num)}"))
        out.append(await attempt(ch.get_data("ivr/enter-number", 3000, 4)))

    script = Script(steps)
    async with agi_server({"inbound": script}) as server:
        call = await FakeCall.dial(server.port)
        replies = [
            "200 result=49 endpos=8000",
            "200 result=0 endpos=12345",
            "200 result=1234",
            "200 result= (timeout)",
            "200 result=50",
            "200 result=1 (15555550123)",
            "200 result=-1",
        ]
        seen = []
        for reply in replies:
            seen.append(await call.args())
            await call.send(reply)
        assert await call.remaining() == []
        results = await script.finished()
        await call.close()
    assert results[:6] == ["1", None, ("1234", False), ("", True), "2", "15555550123"]
    assert isinstance(results[6], AgiHangup)
    assert seen[2] == ["GET", "DATA", "ivr/enter-number", "3000", "4"]
    assert seen[4] == ["WAIT", "FOR", "DIGIT", "2000"]
    assert seen[5] == ["GET", "FULL", "VARIABLE", "${CALLERID(num)}"]


async def test_injection_attempt_sends_nothing(no_leaked_tasks):
    async def steps(ch, out):
        out.append(await attempt_value(ch.set_variable("IVR_NOTE", "x\nEXEC Dial PJSIP/evil")))
        out.append(await attempt_value(ch.exec("Dial;Hangup", "")))
        out.append(await attempt_value(ch.say_digits("12a")))
        out.append(await ch.set_variable("IVR_NOTE", 'quote " and \\ stay'))

    script = Script(steps)
    async with agi_server({"inbound": script}) as server:
        call = await FakeCall.dial(server.port)
        assert await call.args() == ["SET", "VARIABLE", "IVR_NOTE", 'quote " and \\ stay']
        await call.send("200 result=1")
        assert await call.remaining() == []
        results = await script.finished()
        await call.close()
    assert [type(r) for r in results[:3]] == [ValueError] * 3
    assert len(call.commands) == 1


async def attempt_value(awaitable):
    try:
        return await awaitable
    except ValueError as exc:
        return exc


async def test_gosubs_interim_reply_is_not_its_reply(no_leaked_tasks):
    """GOSUB answers `100 result=0 Trying...` before it runs the subroutine, then its
    real reply; the next command gets its own."""
    async def steps(ch, out):
        out.append(await attempt(ch.gosub("ivr-ask", ("a&b", "15", ""))))
        out.append(await attempt(ch.get_full_variable("${READSTATUS}")))

    script = Script(steps)
    async with agi_server({"inbound": script}) as server:
        call = await FakeCall.dial(server.port)
        assert await call.args() == ["GOSUB", "ivr-ask", "s", "1", "a&b,15,"]
        await call.send("100 result=0 Trying...")
        await asyncio.sleep(0.02)
        await call.send("200 result=0 Gosub complete")
        assert await call.args() == ["GET", "FULL", "VARIABLE", "${READSTATUS}"]
        await call.send("200 result=1 (OK)")
        results = await script.finished()
        await call.close()
    assert isinstance(results[0], AgiReply) and results[0].note == "Gosub complete"
    assert isinstance(results[1], str) and results[1] == "OK"


async def test_a_gosub_argument_cannot_split_the_subroutines_arguments():
    channel = AgiChannel.__new__(AgiChannel)
    for bad in ("a,b", "x(1)"):
        with pytest.raises(ValueError):
            await channel.gosub("ivr-ask", (bad,))
