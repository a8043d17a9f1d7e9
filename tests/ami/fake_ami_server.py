"""A fake Asterisk Manager Interface on a real 127.0.0.1 port, speaking AMI's framing.

Banner `Asterisk Call Manager/11.0.0\\r\\n`, then messages of `Key: Value\\r\\n` lines each
ended by an empty line; responses carry the action's ActionID. Every action received is
logged (with the connection it came on) so tests can assert what was, and was not, sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

BANNER = b"Asterisk Call Manager/11.0.0\r\n"

Fields = list[tuple[str, str]]


def frame(*pairs: tuple[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in pairs).encode() + b"\r\n"


@dataclass
class Received:
    """One action as the fake read it off the wire."""

    conn: int
    fields: Fields

    def get(self, key: str, default: str = "") -> str:
        for k, v in self.fields:
            if k.lower() == key.lower():
                return v
        return default

    @property
    def name(self) -> str:
        return self.get("Action")

    @property
    def action_id(self) -> str:
        return self.get("ActionID")


@dataclass
class Session:
    number: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    answer_ping: bool = True
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, data: bytes) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    def drop(self) -> None:
        """Close the socket from Asterisk's side (crash, restart, network cut)."""
        if not self.writer.is_closing():
            self.writer.close()


# A responder gets (fake, session, action) and writes whatever Asterisk would, or nothing.
Responder = Callable[["FakeAmi", Session, Received], "asyncio.Future[None] | None"]


class FakeAmi:
    def __init__(self, username: str = "ivr", secret: str = "s3cret-for-tests") -> None:
        self.username = username
        self.secret = secret
        self.received: list[Received] = []
        self.sessions: list[Session] = []
        self.responders: dict[str, Responder] = {}
        self.silent: set[str] = set()  # action names never answered
        self.ping_answered_on: Callable[[int], bool] = lambda conn: True
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._action_seen = asyncio.Condition()

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in self.sessions:
            session.drop()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # --- what the tests look at -----------------------------------------------------------
    def actions(self, name: str | None = None) -> list[Received]:
        return [a for a in self.received if name is None or a.name.lower() == name.lower()]

    async def wait_for_action(self, name: str, count: int = 1, timeout: float = 2.0) -> Received:
        async def seen() -> Received:
            async with self._action_seen:
                await self._action_seen.wait_for(lambda: len(self.actions(name)) >= count)
                return self.actions(name)[count - 1]
        return await asyncio.wait_for(seen(), timeout)

    async def event(self, *pairs: tuple[str, str], session: int = -1) -> None:
        """Push an unsolicited event (no ActionID) to one connection, the newest by default."""
        await self.sessions[session].send(frame(*pairs))

    # --- the server side ------------------------------------------------------------------
    async def _on_client(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        session = Session(len(self.sessions) + 1, reader, writer)
        self.sessions.append(session)
        try:
            await session.send(BANNER)
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                fields: Fields = []
                for line in raw.decode().split("\r\n"):
                    if ": " in line:
                        key, value = line.split(": ", 1)
                        fields.append((key, value))
                action = Received(session.number, fields)
                self.received.append(action)
                async with self._action_seen:
                    self._action_seen.notify_all()
                await self._answer(session, action)
        finally:
            session.drop()
            session.closed.set()
            self._handlers.discard(task)

    async def _answer(self, session: Session, action: Received) -> None:
        name = action.name.lower()
        aid = ("ActionID", action.action_id)
        if name in {n.lower() for n in self.silent}:
            return
        responder = self.responders.get(name)
        if responder is not None:
            result = responder(self, session, action)
            if result is not None:
                await result
            return
        if name == "login":
            if action.get("Username") == self.username and action.get("Secret") == self.secret:
                await session.send(frame(("Response", "Success"), aid,
                                         ("Message", "Authentication accepted")))
                await session.send(frame(("Event", "FullyBooted"), ("Privilege", "system,all"),
                                         ("Uptime", "12"), ("LastReload", "12"),
                                         ("Status", "Fully Booted")))
            else:
                await session.send(frame(("Response", "Error"), aid,
                                         ("Message", "Authentication failed")))
                session.drop()  # Asterisk ends the session after a failed login
        elif name == "ping":
            if self.ping_answered_on(session.number):
                await session.send(frame(("Response", "Success"), aid, ("Ping", "Pong"),
                                         ("Timestamp", "1795722896.123456")))
        elif name == "logoff":
            await session.send(frame(("Response", "Goodbye"), aid,
                                     ("Message", "Thanks for all the fish.")))
            session.drop()
        elif name == "originate":
            await session.send(frame(("Response", "Success"), aid,
                                     ("Message", "Originate successfully queued")))
        else:
            await session.send(frame(("Response", "Success"), aid, ("Message", "OK")))


@contextlib.asynccontextmanager
async def fake_ami() -> AsyncIterator[FakeAmi]:
    fake = FakeAmi()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


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


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0,
                     what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
