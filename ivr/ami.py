"""AMI client: panoramisk's Manager for the wire format, wrapped for a phone line.

What the wrapper adds, each for a defect of panoramisk 1.4 (docs/platform.md):
- login is awaited and a refusal raises AmiAuthError (panoramisk just leaves
  `authenticated` false and carries on);
- every action has a timeout, and a watchdog pings the peer and reconnects when the Pong
  does not come (panoramisk sends Ping and never checks it, so a hung Asterisk or a
  half-open socket goes unnoticed and actions never resolve);
- after a reconnect nothing is replayed: actions in flight fail with AmiConnectionLost
  (panoramisk re-sends them, Originate included, which could ring a clinician twice);
  the caller decides what is safe to retry;
- event callbacks run as tasks we keep and whose errors are logged (panoramisk schedules
  them without a reference and loses their exceptions).
We keep panoramisk for parsing and action/response matching; the connection lifecycle is
ours.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager
from panoramisk.message import Message

log = logging.getLogger(__name__)

EventCallback = Callable[[Message], Awaitable[None] | None]


class AmiError(RuntimeError):
    """Base of AMI failures."""


class AmiAuthError(AmiError):
    """Asterisk refused the login (wrong user, secret or source address)."""


class AmiTimeout(AmiError):
    """An action got no response in time."""


class AmiConnectionLost(AmiError):
    """The connection went away while an action was in flight; it was NOT re-sent."""


class AmiNotConnected(AmiConnectionLost):
    """There was no connection: the action was never sent."""


class AmiActionError(AmiError):
    """Asterisk answered an action with an error."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"AMI {action}: {message}")
        self.message = message


class _Manager(Manager):
    """panoramisk's Manager with its own reconnect, replay and blind ping turned off."""

    def __init__(self, on_lost: Callable[[object], None], **config: Any) -> None:
        super().__init__(**config)
        self._on_lost = on_lost

    def connection_lost(self, exc: object) -> None:
        self._connected = False
        self._on_lost(exc)

    def ping(self) -> None:
        # The wrapper's watchdog pings and checks the answer.
        return None


def _check_value(key: str, value: object) -> None:
    # panoramisk writes a list or tuple value as one `key: item` line per item, so each
    # item (and the key itself) must be checked, not the list's repr.
    items = value if isinstance(value, (list, tuple)) else [value]
    for text in [str(key), *(str(item) for item in items)]:
        if "\r" in text or "\n" in text:
            # A newline would end the header and let a value inject another AMI header.
            raise ValueError(f"AMI field {key!r} contains a line break")


class AmiClient:
    """One AMI session that stays up: connect, act with timeouts, subscribe to events."""

    # A Pong later than `ping_timeout` drops the session. Generous: a PBX (or this
    # process) on a loaded machine can take seconds to answer, and a false reconnect is
    # costly (an Originate in flight is then never re-sent and its leg may be resolved
    # `unknown`); a dead peer closes the socket and is seen at once anyway.
    def __init__(self, host: str, port: int, username: str, secret: str, *,
                 action_timeout: float = 5.0, ping_interval: float = 5.0,
                 ping_timeout: float = 10.0, reconnect_delay: float = 1.0) -> None:
        self.host, self.port = host, port
        self.username, self._secret = username, secret
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.reconnect_delay = reconnect_delay
        self._manager: _Manager | None = None
        self._subscriptions: list[tuple[str, re.Pattern[str], EventCallback]] = []
        self._on_connected: list[Callable[[], Awaitable[object]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self.connections = 0  # how many times we connected (tests watch reconnects)

    # --- registration ---------------------------------------------------------------
    def subscribe(self, pattern: str, callback: EventCallback) -> None:
        """Call `callback(event)` for events whose name (or UserEvent name) matches."""
        self._subscriptions.append((pattern, re.compile(fnmatch.translate(pattern)), callback))

    def on_connected(self, callback: Callable[[], Awaitable[object]]) -> None:
        """Run after every (re)connection, e.g. to resynchronise call state."""
        self._on_connected.append(callback)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    # --- lifecycle ------------------------------------------------------------------
    async def connect(self, timeout: float = 10.0) -> None:
        """Connect and log in once; raise AmiAuthError or AmiError, then keep it up."""
        await self._connect_once(timeout)
        self._supervisor = asyncio.create_task(self._supervise(), name="ami-supervisor")

    def start_background(self) -> None:
        """Keep trying to connect in the background (first attempt failed)."""
        if self._supervisor is None:
            self._lost.set()
            self._supervisor = asyncio.create_task(self._supervise(), name="ami-supervisor")

    async def _connect_once(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(AMIProtocol, self.host, self.port), timeout)
        except (OSError, TimeoutError) as exc:
            raise AmiError(f"cannot reach AMI at {self.host}:{self.port}: {exc}") from exc
        manager = _Manager(self._connection_lost, loop=loop, host=self.host, port=self.port,
                           ping_delay=10**6)
        manager.register_event("*", self._dispatch)
        done: asyncio.Future[Any] = loop.create_future()
        done.set_result((transport, protocol))
        manager.connection_made(done)
        self._manager = manager
        self._lost.clear()
        try:
            response = await self.action({"Action": "Login", "Username": self.username,
                                          "Secret": self._secret, "Events": "on"},
                                         timeout=timeout, check=False)
        except AmiError:
            self._drop()
            raise
        if not response.success:
            self._drop()
            raise AmiAuthError(f"AMI login refused for user {self.username!r} at "
                               f"{self.host}:{self.port}: {response.message or 'no reason'}")
        self.connections += 1
        self._connected.set()
        log.info("AMI connected to %s:%d (connection %d)", self.host, self.port,
                 self.connections)
        for callback in self._on_connected:
            self._spawn(callback(), "ami-on-connected")

    async def _supervise(self) -> None:
        """Watchdog and reconnect loop: detects a silent peer, reconnects within seconds."""
        while not self._closing:
            if self.connected:
                lost = asyncio.create_task(self._lost.wait())
                try:
                    await asyncio.wait_for(asyncio.shield(lost), self.ping_interval)
                except TimeoutError:
                    try:
                        await self.action({"Action": "Ping"}, timeout=self.ping_timeout)
                    except AmiTimeout:
                        log.warning("AMI peer silent for %.0fs; reconnecting",
                                    self.ping_timeout)
                        self._drop()
                    except AmiError:
                        pass
                    continue
                finally:
                    lost.cancel()
            if self._closing:
                return
            await asyncio.sleep(self.reconnect_delay)
            try:
                await self._connect_once(timeout=5.0)
            except AmiError as exc:
                log.info("AMI reconnect failed: %s", exc)

    def _connection_lost(self, exc: object) -> None:
        if self.connected and not self._closing:
            log.warning("AMI connection lost")
        self._connected.clear()
        self._fail_in_flight()
        self._lost.set()

    def _fail_in_flight(self) -> None:
        manager = self._manager
        if manager is None:
            return
        pending = list(manager.awaiting_actions)
        manager.awaiting_actions.clear()
        protocol = manager.protocol
        if protocol is not None:
            pending += list(getattr(protocol, "responses", {}).values())
            protocol.responses = {}
            manager.responses = protocol.responses
        for action in pending:
            if not action.future.done():
                action.future.set_exception(AmiConnectionLost(
                    f"connection lost during {action.get('action', '?')}; not re-sent"))

    def _drop(self) -> None:
        """Close the current connection ourselves (silent peer, failed login)."""
        manager = self._manager
        if manager is not None and manager.protocol is not None:
            manager.protocol.close()  # panoramisk queues in-flight actions for replay...
        self._connection_lost(None)  # ...which we fail instead of replaying

    async def close(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self.connected:
            try:
                await self.action({"Action": "Logoff"}, timeout=1.0, check=False)
            except AmiError:
                pass
        self._drop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- actions --------------------------------------------------------------------
    async def action(self, fields: dict[str, Any], *, timeout: float | None = None,
                     as_list: bool | None = None, check: bool = True) -> Any:
        """Send an action and wait for its response (a list for event-list actions)."""
        manager = self._manager
        if manager is None or manager.protocol is None or (
                not self.connected and fields.get("Action") != "Login"):
            raise AmiNotConnected("AMI is not connected")
        for key, value in fields.items():
            _check_value(key, value)
        future = manager.send_action(dict(fields), as_list=as_list)
        try:
            response = await asyncio.wait_for(asyncio.shield(future),
                                              timeout or self.action_timeout)
        except TimeoutError as exc:
            responses = getattr(manager.protocol, "responses", {})
            for key in [k for k, v in responses.items() if v.future is future]:
                responses.pop(key, None)
            if not future.done():
                future.cancel()
            raise AmiTimeout(f"no response to {fields.get('Action')} in "
                             f"{timeout or self.action_timeout:.1f}s") from exc
        first = response[0] if isinstance(response, list) else response
        if check and first.get("Response") == "Error":
            raise AmiActionError(str(fields.get("Action")), first.get("Message", ""))
        return response

    async def originate(self, fields: dict[str, Any], timeout: float | None = None) -> Message:
        """Originate exactly once: on a lost connection it raises and is never re-sent."""
        # Async is spelled out (Asterisk's default): without it panoramisk's reading of
        # "Originate successfully queued" raises KeyError('async') inside data_received,
        # which kills the connection and leaves this call to time out.
        return await self.action({"Action": "Originate", "Async": "false", **fields},
                                 timeout=timeout)

    async def db_get_tree(self, family: str) -> dict[str, str]:
        """All keys of an AstDB family as {key-without-family: value}."""
        # as_list stays None: with as_list=True panoramisk never completes a single
        # `Response: Error`, so an error would only surface as a timeout.
        response = await self.action({"Action": "DBGetTree", "Family": family},
                                     check=False)
        entries = response if isinstance(response, list) else [response]
        first = entries[0]
        if first.get("Response") == "Error":
            if "not found" in first.get("Message", "").lower():
                return {}
            raise AmiActionError("DBGetTree", first.get("Message", ""))
        out: dict[str, str] = {}
        prefix = f"/{family}/"
        for message in entries:
            if message.get("Event") == "DBGetTreeResponse":
                key = message.get("Key", "")
                out[key[len(prefix):] if key.startswith(prefix) else key] = message.get("Val", "")
        return out

    async def db_put(self, family: str, key: str, value: str) -> None:
        await self.action({"Action": "DBPut", "Family": family, "Key": key, "Val": value})

    async def db_del(self, family: str, key: str) -> None:
        await self.action({"Action": "DBDel", "Family": family, "Key": key}, check=False)

    async def db_del_tree(self, family: str) -> None:
        await self.action({"Action": "DBDelTree", "Family": family}, check=False)

    # --- events ---------------------------------------------------------------------
    def _dispatch(self, _manager: Manager, event: Message) -> None:
        name = event.get("Event", "")
        if name == "UserEvent":
            name = event.get("UserEvent", name)
        for _pattern, regex, callback in self._subscriptions:
            if regex.match(name):
                try:
                    result = callback(event)
                except Exception:
                    log.exception("AMI event callback failed for %s", name)
                    continue
                if asyncio.iscoroutine(result):
                    self._spawn(result, f"ami-event-{name}")

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("AMI task %s failed: %r", task.get_name(),
                      type(task.exception()).__name__, exc_info=task.exception())
