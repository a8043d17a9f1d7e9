"""The FastAGI wire protocol: headers, commands, replies, hang-up, on asyncio streams.

This is our own small layer, not panoramisk's FastAGI `Application`, because that one is
wrong exactly where a phone line needs it right (docs/platform.md, checked on panoramisk 1.4):
a client that disconnects during the header handshake makes it spin without yielding and
freezes the event loop; it takes Asterisk's `HANGUP` line as the reply to the pending
command and reads a multi-line `520` reply as several replies, so every later reply is off
by one; and a command that never gets a reply waits forever. The grammar is small, so one
reader task per call that understands all of it is less code than undoing each defect.

Asterisk's side, as seen on 22.10.1:
- headers `agi_<name>: <value>`, one per line, then an empty line;
- for each command line, one reply `<code> result=<r>[ (<data>)][ key=value...]`;
- `HANGUP` on a line of its own when the caller hangs up (AGISIGHUP on), then still the
  real reply to the pending command; later commands get `511`;
- `520-...` continuation lines ending with `520 End of proper usage.` for bad syntax.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_HEADER_LINES = 200
MAX_LINE = 16 * 1024
#: How long a command waits for Asterisk's reply before the stream is given up (the
#: call then goes to the dialplan's fallback). A hang-up ends the wait at once; this is
#: for a stream that answers nothing. 10 s was too short for a starved machine: beside
#: two CPU hogs, Asterisk's answer to GET FULL VARIABLE after a Read came more than 10 s
#: late (the controller's own log silent for as long), and two callers in the middle of
#: their intake were sent to the fallback.
DEFAULT_TIMEOUT = 30.0
_EOF = object()


class AgiError(Exception):
    """Base of everything that can go wrong on one call's AGI stream."""


class AgiHandshakeError(AgiError):
    """The peer closed or stalled before finishing the header block."""


class AgiHangup(AgiError):
    """The caller hung up; the channel accepts no more commands."""


class AgiDisconnected(AgiError):
    """The socket closed (or the stream can no longer be trusted)."""


class AgiTimeout(AgiError):
    """A command got no reply in time; the stream is abandoned (replies would be off)."""


class AgiCommandError(AgiError):
    """Asterisk refused a command (510 unknown, 520 bad syntax, other non-200 codes)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"AGI {code}: {text}")
        self.code = code
        self.text = text


@dataclass(frozen=True)
class AgiReply:
    """One parsed reply line."""

    code: int
    result: str
    data: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    #: Words after the result that are neither (data) nor key=value: GOSUB's
    #: "Gosub complete (abnormal exit)".
    note: str = ""

    @property
    def result_int(self) -> int:
        try:
            return int(self.result)
        except ValueError:
            return -1


_REPLY = re.compile(r"^(\d{3})(?:[ -](.*))?$")


def parse_reply(line: str) -> AgiReply:
    """Parse `200 result=1 (data) endpos=123`; data is everything inside the outer ()."""
    match = _REPLY.match(line)
    if not match:
        raise AgiDisconnected(f"unparseable AGI reply ({len(line)} bytes)")
    code, rest = int(match.group(1)), (match.group(2) or "")
    if not rest.startswith("result="):
        return AgiReply(code, "", rest or None)
    rest = rest[len("result="):]
    result, _, rest = rest.partition(" ")
    data = None
    if rest.startswith("("):
        close = rest.rfind(")")
        if close > 0:
            data, rest = rest[1:close], rest[close + 1:]
    words = rest.split()
    extra = dict(p.split("=", 1) for p in words if "=" in p)
    return AgiReply(code, result, data, extra, " ".join(p for p in words if "=" not in p))


def quote(arg: object) -> str:
    """One AGI argument, quoted so spaces, quotes and backslashes stay inside it.

    Newlines and NULs would end or cut the command line, letting a value inject a second
    command, so they are refused outright rather than escaped.
    """
    text = str(arg)
    if any(c in text for c in "\r\n\0"):
        raise ValueError("an AGI argument may not contain a newline or NUL")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_command(name: str, args: tuple[object, ...]) -> str:
    if not re.fullmatch(r"[A-Z][A-Z ]*[A-Z]", name):
        raise ValueError(f"not an AGI command name: {name!r}")
    return " ".join([name, *(quote(a) for a in args)]) + "\n"


#: Header names res_agi writes (Asterisk 22, setup_env()), plus agi_arg_<n>. A name
#: outside this set is ignored rather than refused, so a newer Asterisk that adds a
#: header keeps working; what is refused is the shape of an injection (below).
KNOWN_HEADERS = frozenset({
    "network", "network_script", "request", "channel", "language", "type", "uniqueid",
    "version", "callerid", "calleridname", "callingpres", "callingani2", "callington",
    "callingtns", "dnid", "rdnis", "context", "extension", "priority", "enhanced",
    "accountcode", "threadid",
})
#: Headers every real block carries, in res_agi's order; a block that ends before the
#: last of them was cut short (an injected blank line ends it right after callerid).
REQUIRED_HEADERS = ("network_script", "request", "channel", "uniqueid", "callerid",
                    "calleridname", "dnid", "context", "extension", "priority", "threadid")
_HEADER_LINE = re.compile(r"agi_([a-z0-9_]{1,32}): ?(.*)")
_ARG_NAME = re.compile(r"arg_[0-9]{1,3}")
#: A channel's UNIQUEID: Asterisk's own `[systemname-]<epoch>.<sequence>`, or the
#: ChannelId our Originate gave a clinician's leg (`ivrleg-<hex>`): an id, never text.
UNIQUEID_FORM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ROUTE_FORM = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


#: Told of every command once its reply (or failure) is in: (command verb, seconds from
#: sending to reply, outcome). The verb is our own constant (build_command checks it);
#: arguments, which may carry caller data, are never passed on.
CommandHook = Callable[[str, float, str], None]
OUTCOMES: dict[type[AgiError], str] = {  # most specific first; anything else is "error"
    AgiHangup: "hangup", AgiTimeout: "timeout", AgiDisconnected: "disconnected",
    AgiCommandError: "refused",
}


def outcome_of(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return next((name for kind, name in OUTCOMES.items() if isinstance(exc, kind)), "error")


class AgiHeaderRefused(AgiHandshakeError):
    """The header block does not have the shape Asterisk writes: an injection, or a
    stream that cannot be trusted. `reason` is a short token (never a header value);
    `uniqueid` is the block's uniqueid when that one was well-formed."""

    def __init__(self, reason: str, uniqueid: str = "") -> None:
        super().__init__(f"AGI header block refused: {reason}")
        self.reason = reason
        self.uniqueid = uniqueid


def check_header_line(line: str, headers: dict[str, str]) -> None:
    """Add one header line to `headers`, or raise AgiHeaderRefused.

    A caller who gets a newline into a header value (a `%0A` in the SIP From user part
    is decoded into `agi_callerid`) makes the rest of that value a line of its own: it
    either repeats a header Asterisk already sent (uniqueid comes before callerid), adds
    one that is not an `agi_` line, or ends the block early. So a repeated name, a line
    that is not `agi_<name>: <value>`, or a control character is refused outright.
    """
    uniqueid = headers.get("uniqueid", "")
    match = _HEADER_LINE.fullmatch(line)
    if match is None:
        raise AgiHeaderRefused("line-not-a-header", uniqueid)
    name, value = match.group(1), match.group(2).strip()
    if _CONTROL.search(value):
        raise AgiHeaderRefused(f"control-character-in-{name}", uniqueid)
    if name in headers:
        raise AgiHeaderRefused(f"repeated-{name}", uniqueid)
    if name not in KNOWN_HEADERS and not _ARG_NAME.fullmatch(name):
        return
    if name == "uniqueid" and not UNIQUEID_FORM.fullmatch(value):
        raise AgiHeaderRefused("bad-uniqueid")
    if name == "network_script" and not _ROUTE_FORM.fullmatch(value.split("?", 1)[0]):
        raise AgiHeaderRefused("bad-network-script", uniqueid)
    headers[name] = value


async def read_headers(reader: asyncio.StreamReader, timeout: float) -> dict[str, str]:
    """Read the `agi_*` header block strictly; names lose their `agi_` prefix.

    Raises AgiHandshakeError when the peer goes or stalls, AgiHeaderRefused (a subclass)
    when the block is not what Asterisk writes.
    """
    headers: dict[str, str] = {}

    async def _read() -> None:
        for _ in range(MAX_HEADER_LINES):
            try:
                raw = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError) as exc:
                raise AgiHandshakeError("header line too long") from exc
            if not raw:
                # EOF: panoramisk loops here forever; we give up on this client.
                raise AgiHandshakeError("peer closed during the header handshake")
            line = raw.decode("utf-8", "replace").removesuffix("\n").removesuffix("\r")
            if line == "":
                missing = [n for n in REQUIRED_HEADERS if n not in headers]
                if missing:
                    raise AgiHeaderRefused(f"block-ends-before-{missing[0]}",
                                           headers.get("uniqueid", ""))
                return
            check_header_line(line, headers)
        raise AgiHandshakeError("too many header lines")

    try:
        await asyncio.wait_for(_read(), timeout)
    except TimeoutError as exc:
        raise AgiHandshakeError("header handshake timed out") from exc
    return headers


class AgiChannel:
    """One call's AGI session: send a command, get its reply, notice the hang-up."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 headers: dict[str, str], default_timeout: float = DEFAULT_TIMEOUT,
                 on_command: CommandHook | None = None) -> None:
        self.headers = headers
        self.on_command = on_command
        self.default_timeout = default_timeout
        self.hung_up = False
        self.hangup_event = asyncio.Event()
        self._reader = reader
        self._writer = writer
        self._replies: asyncio.Queue[object] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._broken: str | None = None
        self._closed = False
        self._reader_task = asyncio.create_task(self._read_loop(), name="agi-reader")

    # --- identity (from headers Asterisk sent; caller-controlled ones are marked) -----
    @property
    def uniqueid(self) -> str:
        return self.headers.get("uniqueid", "")

    @property
    def route(self) -> str:
        """The path of agi://host:port/<route>?args, without query."""
        script = self.headers.get("network_script", "")
        return script.split("?", 1)[0].strip("/")

    # --- the reader -------------------------------------------------------------------
    async def _read_loop(self) -> None:
        try:
            while True:
                raw = await self._reader.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line == "HANGUP":
                    # Not a reply: the reply to the pending command still follows.
                    self.hung_up = True
                    self.hangup_event.set()
                    continue
                if line.startswith("520-"):
                    block = [line[4:]]
                    while True:
                        more = await self._reader.readline()
                        if not more:
                            raise ConnectionResetError("EOF inside a 520 reply")
                        text = more.decode("utf-8", "replace").rstrip("\r\n")
                        if text.startswith("520 "):
                            break
                        block.append(text)
                    self._replies.put_nowait(AgiCommandError(520, "\n".join(block)))
                    continue
                if line:
                    self._replies.put_nowait(line)
        except (ConnectionError, ValueError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            self._closed = True
            self._replies.put_nowait(_EOF)

    # --- commands ---------------------------------------------------------------------
    async def command(self, name: str, *args: object, timeout: float | None = None,
                      allow_after_hangup: bool = False) -> AgiReply:
        """Send one command and return its reply.

        Raises AgiHangup once the caller has gone (the reply, if any, is discarded),
        AgiTimeout when no reply comes in time, AgiDisconnected when the socket is gone.
        """
        if self.on_command is None:
            return await self._command(name, args, timeout, allow_after_hangup)
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            return await self._command(name, args, timeout, allow_after_hangup)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            try:
                self.on_command(name, time.perf_counter() - started, outcome_of(failure))
            except Exception as exc:  # counting must never break a call
                log.warning("AGI command hook failed (%s)", type(exc).__name__)

    async def _command(self, name: str, args: tuple[object, ...], timeout: float | None,
                       allow_after_hangup: bool) -> AgiReply:
        line = build_command(name, args)
        async with self._lock:
            if self._broken:
                raise AgiDisconnected(self._broken)
            if self.hung_up and not allow_after_hangup:
                raise AgiHangup("caller hung up")
            if self._closed:
                raise AgiDisconnected("AGI socket closed")
            try:
                self._writer.write(line.encode())
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                raise AgiDisconnected("AGI socket closed") from exc
            try:
                item = await self._reply(timeout if timeout is not None
                                         else self.default_timeout)
            except TimeoutError as exc:
                # A late reply would now be taken for the next command's: stop here.
                self._broken = f"no reply to {name} in time"
                self.close()
                raise AgiTimeout(self._broken) from exc
            except asyncio.CancelledError:
                # Same reasoning: the reply to this command is still on its way.
                self._broken = f"{name} was cancelled while waiting for its reply"
                self.close()
                raise
            if item is _EOF:
                self._replies.put_nowait(_EOF)  # later callers see it too
                if self.hung_up:
                    raise AgiHangup("caller hung up")
                raise AgiDisconnected("AGI socket closed")
            if isinstance(item, AgiCommandError):
                raise item
            assert isinstance(item, str)
            reply = parse_reply(item)
            if reply.code == 511 or (self.hung_up and not allow_after_hangup):
                raise AgiHangup("caller hung up")
            if reply.code != 200:
                raise AgiCommandError(reply.code, reply.data or reply.result)
            return reply

    async def _reply(self, seconds: float) -> object:
        """The command's final reply: a `100 result=0 Trying...` line (GOSUB writes one
        before it runs the subroutine) is not the end of it; the whole wait is bounded."""
        async with asyncio.timeout(seconds):
            while True:
                item = await self._replies.get()
                if not (isinstance(item, str) and item.startswith("100 ")):
                    return item

    # --- convenience wrappers (each one AGI command) ------------------------------------
    async def answer(self) -> None:
        await self.command("ANSWER")

    async def get_variable(self, name: str) -> str | None:
        reply = await self.command("GET VARIABLE", name)
        return reply.data if reply.result == "1" else None

    async def get_full_variable(self, expression: str) -> str | None:
        reply = await self.command("GET FULL VARIABLE", expression)
        return reply.data if reply.result == "1" else None

    async def set_variable(self, name: str, value: str, *,
                           allow_after_hangup: bool = False) -> None:
        await self.command("SET VARIABLE", name, value, allow_after_hangup=allow_after_hangup)

    async def stream_file(self, path: str, escape_digits: str = "",
                          max_seconds: float = 120) -> str | None:
        """Play a prompt; return the key that interrupted it, if any."""
        reply = await self.command("STREAM FILE", path, escape_digits,
                                   timeout=max_seconds + 5)
        if reply.result_int < 0:
            raise AgiHangup("playback failed or caller hung up")
        return chr(reply.result_int) if reply.result_int > 0 else None

    async def get_data(self, path: str, timeout_ms: int, max_digits: int,
                       prompt_seconds: float = 60) -> tuple[str, bool]:
        """Play a prompt and collect keys; return (digits, timed_out)."""
        reply = await self.command("GET DATA", path, timeout_ms, max_digits,
                                   timeout=prompt_seconds + timeout_ms / 1000 * (max_digits + 1)
                                   + 5)
        if reply.result == "-1":
            raise AgiHangup("caller hung up")
        return reply.result, reply.data == "timeout"

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        reply = await self.command("WAIT FOR DIGIT", timeout_ms, timeout=timeout_ms / 1000 + 5)
        if reply.result_int < 0:
            raise AgiHangup("caller hung up")
        return chr(reply.result_int) if reply.result_int > 0 else None

    async def say_digits(self, digits: str, escape_digits: str = "") -> None:
        if not digits.isdigit():
            raise ValueError("say_digits takes digits only")
        await self.command("SAY DIGITS", digits, escape_digits, timeout=len(digits) * 2 + 10)

    async def record_file(self, path: str, fmt: str, escape_digits: str, timeout_ms: int,
                          beep: bool = True, silence_seconds: int | None = None) -> AgiReply:
        args: list[object] = [path, fmt, escape_digits, timeout_ms]
        if beep:
            args.append("BEEP")
        if silence_seconds:
            args.append(f"s={silence_seconds}")
        return await self.command("RECORD FILE", *args, timeout=timeout_ms / 1000 + 15)

    async def gosub(self, context: str, arguments: tuple[str, ...],
                    timeout: float = 60) -> AgiReply:
        """Run a dialplan subroutine (`context`, s, 1) with `arguments` (ARG1...), built
        by us and never by a caller: Gosub splits them at ',' and so they may not hold
        one. A subroutine the caller's hang-up cut short reports an abnormal exit."""
        if any("," in a or "(" in a or ")" in a for a in arguments):
            raise ValueError("a Gosub argument may not contain ',' or brackets")
        return await self.command("GOSUB", context, "s", 1, ",".join(arguments),
                                  timeout=timeout)

    async def exec(self, application: str, options: str = "", timeout: float = 60) -> AgiReply:
        """Run a dialplan application; `options` must be built by us, never by a caller."""
        if not re.fullmatch(r"[A-Za-z]+", application):
            raise ValueError(f"not an application name: {application!r}")
        return await self.command("EXEC", application, options, timeout=timeout)

    # --- teardown -------------------------------------------------------------------
    def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()

    async def aclose(self) -> None:
        self.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2)
        except (TimeoutError, ConnectionError, OSError):
            pass
        self._reader_task.cancel()
        try:
            await self._reader_task
        except asyncio.CancelledError:
            pass
