"""A fake Asterisk for the FastAGI tests: dials the real AgiServer on 127.0.0.1 like res_agi.

Asterisk is the *client* of a FastAGI server: it connects, writes the `agi_*` header block
and a blank line, then reads one command line at a time and writes the reply (or a
`HANGUP` line, or a multi-line `520` block). The bytes below follow Asterisk 22.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

import pytest

from ivr.agi.protocol import AgiError
from ivr.agi.server import AgiServer, Handler

UNIQUEID = "node-1795722896.0"

# The 520 block Asterisk 22 writes for `DATABASE PUT` with a missing argument.
USAGE_520 = (
    "520-Invalid command syntax.  Proper usage follows:",
    " Usage: DATABASE PUT <family> <key> <value>",
    "\tAdds or updates an entry in the Asterisk database for a given family, key, and",
    " value. Returns 1 if successful, 0 otherwise.",
    "520 End of proper usage.",
)


def header_lines(script: str = "inbound", uniqueid: str = UNIQUEID,
                 channel: str = "PJSIP/trunk-00000001", port: int = 4573,
                 extra: Mapping[str, str] | None = None) -> list[str]:
    """The header block in the order res_agi writes it for agi://host:port/<script>."""
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: agi://127.0.0.1:{port}/{script}",
        f"agi_channel: {channel}",
        "agi_language: en",
        "agi_type: PJSIP",
        f"agi_uniqueid: {uniqueid}",
        "agi_version: 22.10.1",
        "agi_callerid: 15555550123",
        "agi_calleridname: unknown",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        "agi_dnid: 15555550100",
        "agi_rdnis: unknown",
        "agi_context: from-trunk",
        "agi_extension: 15555550100",
        "agi_priority: 2",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        "agi_threadid: 139912345678912",
    ]
    lines += [f"agi_{k}: {v}" for k, v in (extra or {}).items()]
    return lines


def header_block(**kwargs: object) -> bytes:
    return ("\n".join(header_lines(**kwargs)) + "\n\n").encode()  # type: ignore[arg-type]


def split_args(line: str) -> list[str]:
    """Split a command line the way res_agi does (quotes group, backslash escapes one char).

    Written from the behaviour of Asterisk's argument parser: outside quotes, blanks end
    a word; a `"` toggles quoting (and starts a word, so `""` is an empty argument); a
    backslash makes the next character literal.
    """
    words: list[str] = []
    current: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
            continue
        elif ch == '"':
            quoted = not quoted
            if current is None:
                current = []
            continue
        elif ch in " \t" and not quoted:
            if current is not None:
                words.append("".join(current))
                current = None
            continue
        if current is None:
            current = []
        current.append(ch)
    if current is not None:
        words.append("".join(current))
    return words


class FakeCall:
    """One call as Asterisk runs it over a FastAGI socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.commands: list[str] = []

    @classmethod
    async def connect(cls, port: int) -> FakeCall:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    @classmethod
    async def dial(cls, port: int, **headers: object) -> FakeCall:
        call = await cls.connect(port)
        await call.send_raw(header_block(**headers))
        return call

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, *lines: str) -> None:
        """Write reply lines, each ended by `\\n` as res_agi does, in one segment."""
        await self.send_raw("".join(f"{line}\n" for line in lines).encode())

    async def command(self, timeout: float = 2.0) -> str:
        """The next command line the controller sent (without its newline)."""
        raw = await asyncio.wait_for(self.reader.readline(), timeout)
        if not raw.endswith(b"\n"):
            raise AssertionError(f"controller closed the AGI socket (got {raw!r})")
        line = raw.decode().rstrip("\n")
        self.commands.append(line)
        return line

    async def args(self, timeout: float = 2.0) -> list[str]:
        """The next command, split into words as Asterisk would see them."""
        return split_args(await self.command(timeout))

    async def remaining(self, timeout: float = 2.0) -> list[str]:
        """Everything the controller still sends until it closes the socket."""
        data = await asyncio.wait_for(self.reader.read(), timeout)
        lines = data.decode().splitlines()
        self.commands += lines
        return lines

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def agi_server(routes: Mapping[str, Handler], **kwargs: float) -> AsyncIterator[AgiServer]:
    """A real AgiServer on a free 127.0.0.1 port, stopped afterwards."""
    server = AgiServer(routes, host="127.0.0.1", port=0, **kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def attempt(awaitable: object) -> object:
    """The command's result, or the AgiError it raised (so a script can record both)."""
    try:
        return await awaitable  # type: ignore[misc]
    except AgiError as exc:
        return exc


async def assert_no_tasks_left(timeout: float = 1.0) -> None:
    """Fail if any task besides the caller is still alive once things had time to end."""
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    deadline = loop.time() + timeout
    while True:
        left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not left:
            return
        if loop.time() > deadline:
            raise AssertionError("tasks left behind: " + ", ".join(
                f"{t.get_name()}={t.get_coro()!r}" for t in left))
        await asyncio.sleep(0.01)


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    await assert_no_tasks_left()
