"""AMI client against a fake Asterisk Manager on a real port: login, timeouts, watchdog,
no replay after a reconnect, event callbacks, header injection, event lists."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_ami_server import (  # noqa: E402
    FakeAmi,
    Received,
    Session,
    assert_no_tasks_left,
    eventually,
    fake_ami,
    frame,
    no_leaked_tasks,
)

from ivr.ami import AmiActionError, AmiAuthError, AmiClient, AmiConnectionLost, AmiError, AmiTimeout

__all__ = ["no_leaked_tasks"]


def make_client(fake: FakeAmi, secret: str | None = None, **kwargs: float) -> AmiClient:
    options = dict(action_timeout=1.0, ping_interval=5.0, ping_timeout=1.0,
                   reconnect_delay=0.05)
    options.update(kwargs)
    return AmiClient("127.0.0.1", fake.port, fake.username,
                     fake.secret if secret is None else secret, **options)


# --- login ----------------------------------------------------------------------------------

async def test_connect_waits_for_the_login_response(no_leaked_tasks):
    async with fake_ami() as fake:
        async def slow_login(fake: FakeAmi, session: Session, action: Received):
            await asyncio.sleep(0.1)
            await session.send(frame(("Response", "Success"), ("ActionID", action.action_id),
                                     ("Message", "Authentication accepted")))

        fake.responders["login"] = slow_login
        client = make_client(fake)
        await client.connect(timeout=2)
        try:
            assert client.connected and client.connections == 1
            [login] = fake.actions("Login")
            assert login.get("Username") == "ivr" and login.get("Secret") == fake.secret
            assert login.get("Events") == "on" and login.action_id
        finally:
            await client.close()


async def test_bad_credentials_raise_a_clear_error_without_the_secret(no_leaked_tasks):
    async with fake_ami() as fake:
        wrong = "hunter2-wrong-secret"
        client = make_client(fake, secret=wrong)
        with pytest.raises(AmiAuthError) as err:
            await client.connect(timeout=2)
        text = str(err.value)
        assert "Authentication failed" in text and "'ivr'" in text
        assert f"127.0.0.1:{fake.port}" in text
        assert wrong not in text and wrong not in repr(err.value)
        assert not client.connected and client.connections == 0
        await asyncio.wait_for(fake.sessions[0].closed.wait(), 2)
        await client.close()


async def test_login_that_is_never_answered_times_out(no_leaked_tasks):
    async with fake_ami() as fake:
        fake.silent.add("Login")
        client = make_client(fake)
        with pytest.raises(AmiTimeout):
            await client.connect(timeout=0.2)
        await client.close()


async def test_unreachable_ami_is_an_error_not_a_hang(no_leaked_tasks):
    fake = FakeAmi()
    await fake.start()
    port = fake.port
    await fake.stop()  # nothing listens there any more
    client = AmiClient("127.0.0.1", port, "ivr", "x")
    with pytest.raises(AmiError) as err:
        await client.connect(timeout=1)
    assert "cannot reach AMI" in str(err.value)
    await client.close()


# --- actions ----------------------------------------------------------------------------------

async def test_every_action_has_a_timeout_and_late_answers_do_no_harm(no_leaked_tasks):
    later: list[asyncio.Future[None]] = []
    async with fake_ami() as fake:
        async def late(fake: FakeAmi, session: Session, action: Received):
            async def answer_later():
                await asyncio.sleep(0.3)
                await session.send(frame(("Response", "Success"),
                                         ("ActionID", action.action_id), ("Message", "late")))
            later.append(asyncio.ensure_future(answer_later()))

        fake.responders["corestatus"] = late
        fake.silent.add("QueueStatus")
        client = make_client(fake, action_timeout=0.2)
        await client.connect(timeout=2)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(AmiTimeout):
                await client.action({"Action": "CoreStatus"})  # the default timeout
            with pytest.raises(AmiTimeout):
                await client.action({"Action": "QueueStatus"}, timeout=0.1)
            assert loop.time() - started < 1.0
            await asyncio.sleep(0.3)  # the late CoreStatus answer arrives meanwhile
            reply = await client.action({"Action": "DBPut", "Family": "f", "Key": "k",
                                         "Val": "v"})
            assert reply.message == "OK" and client.connected
            await asyncio.gather(*later)
        finally:
            await client.close()


async def test_error_response_raises_action_error(no_leaked_tasks):
    async with fake_ami() as fake:
        fake.responders["dbput"] = lambda fake, session, action: session.send(frame(
            ("Response", "Error"), ("ActionID", action.action_id),
            ("Message", "Failed to update entry")))
        client = make_client(fake)
        await client.connect(timeout=2)
        try:
            with pytest.raises(AmiActionError) as err:
                await client.db_put("ivrend", "x-1.2", "v")
            assert err.value.message == "Failed to update entry"
        finally:
            await client.close()


@pytest.mark.parametrize("fields", [
    {"Channel": "PJSIP/100@trunk", "CallerID": "x\r\nAction: Hangup"},
    {"Channel": "PJSIP/100@trunk\nAction: Hangup"},
    {"Channel": "PJSIP/100@trunk", "Variable": "IVR_CALL=1\rX"},
    {"Channel": "PJSIP/100@trunk", "Variable": ["IVR_CALL=1", "IVR_NOTE=a\r\nAction: Hangup"]},
    {"Channel": "PJSIP/100@trunk", "Variable\r\nAction: Hangup\r\nChannel": "x"},
])
async def test_line_breaks_are_refused_before_anything_is_sent(no_leaked_tasks, fields):
    async with fake_ami() as fake:
        client = make_client(fake)
        await client.connect(timeout=2)
        try:
            with pytest.raises(ValueError):
                await client.originate({**fields, "Exten": "s", "Context": "ivr-callback",
                                        "Priority": "1"})
            await client.action({"Action": "Ping"})  # one round trip: the wire is clean
            assert [a.name for a in fake.received] == ["Login", "Ping"]
        finally:
            await client.close()


async def test_originate_is_sent_once_and_answered(no_leaked_tasks):
    async with fake_ami() as fake:
        client = make_client(fake)
        await client.connect(timeout=2)
        try:
            reply = await client.originate({"Channel": "PJSIP/100@trunk", "Exten": "s",
                                            "Context": "ivr-callback", "Priority": "1",
                                            "Variable": ["IVR_CALL=c-1", "IVR_TRY=1"]})
            assert reply.success and reply.message == "Originate successfully queued"
            [sent] = fake.actions("Originate")
            assert [v for k, v in sent.fields if k == "Variable"] == ["IVR_CALL=c-1",
                                                                       "IVR_TRY=1"]
            assert sent.get("Async") == "false"  # Asterisk's default, spelled out
            assert client.connected and client.connections == 1
        finally:
            await client.close()


# --- losing the connection ----------------------------------------------------------------------

async def test_silent_peer_is_detected_and_reconnected(no_leaked_tasks, caplog):
    async with fake_ami() as fake:
        fake.ping_answered_on = lambda conn: conn != 1  # the first connection goes silent
        client = make_client(fake, ping_interval=0.1, ping_timeout=0.2)
        reconnected = []

        async def on_connected() -> None:
            reconnected.append(client.connections)

        client.on_connected(on_connected)
        await client.connect(timeout=2)
        try:
            await eventually(lambda: client.connections == 2 and client.connected, 3,
                             "a second connection")
            await asyncio.wait_for(fake.sessions[0].closed.wait(), 2)  # we hung up on it
            assert not fake.sessions[1].closed.is_set()
            assert reconnected == [1, 2]
            assert "silent" in caplog.text
            # The new connection works, and the watchdog is happy with it.
            await client.action({"Action": "Ping"})
            await asyncio.sleep(0.3)
            assert client.connections == 2
        finally:
            await client.close()


async def test_originate_in_flight_fails_and_is_not_replayed_after_a_drop(no_leaked_tasks):
    async with fake_ami() as fake:
        def drop_on_originate(fake: FakeAmi, session: Session, action: Received):
            session.drop()  # Asterisk restarts with the Originate unanswered

        fake.responders["originate"] = drop_on_originate
        client = make_client(fake)
        await client.connect(timeout=2)
        try:
            with pytest.raises(AmiConnectionLost):
                await client.originate({"Channel": "PJSIP/100@trunk", "Exten": "s",
                                        "Context": "ivr-callback", "Priority": "1"},
                                       timeout=3)
            await eventually(lambda: client.connections == 2 and client.connected, 3,
                             "the reconnect")
            # After FullyBooted on the new connection (panoramisk's replay trigger) and a
            # round trip, the fake has still seen exactly one Originate.
            await client.action({"Action": "Ping"})
            await asyncio.sleep(0.05)
            assert [(a.conn, a.name) for a in fake.received] == [
                (1, "Login"), (1, "Originate"), (2, "Login"), (2, "Ping")]
        finally:
            await client.close()


async def test_originate_in_flight_on_a_silent_peer_is_not_replayed(no_leaked_tasks):
    async with fake_ami() as fake:
        fake.silent.add("Originate")
        fake.ping_answered_on = lambda conn: conn != 1
        client = make_client(fake, ping_interval=0.1, ping_timeout=0.2)
        await client.connect(timeout=2)
        try:
            with pytest.raises(AmiConnectionLost):
                await client.originate({"Channel": "PJSIP/100@trunk", "Exten": "s",
                                        "Context": "ivr-callback", "Priority": "1"},
                                       timeout=5)
            await eventually(lambda: client.connections == 2 and client.connected, 3,
                             "the reconnect")
            await client.action({"Action": "Ping"})
            await asyncio.sleep(0.05)
            assert len(fake.actions("Originate")) == 1
            assert fake.actions("Originate")[0].conn == 1
        finally:
            await client.close()


async def test_actions_while_disconnected_fail_fast(no_leaked_tasks):
    async with fake_ami() as fake:
        client = make_client(fake, reconnect_delay=5.0)
        await client.connect(timeout=2)
        try:
            fake.sessions[0].drop()
            await eventually(lambda: not client.connected, 2, "the drop to be noticed")
            with pytest.raises(AmiConnectionLost):
                await client.action({"Action": "Ping"})
        finally:
            await client.close()


# --- events -----------------------------------------------------------------------------------

async def test_failing_callbacks_are_logged_and_do_not_stop_dispatch(no_leaked_tasks, caplog):
    async with fake_ami() as fake:
        client = make_client(fake)
        seen: list[str] = []
        slow_cancelled = asyncio.Event()
        slow_started = asyncio.Event()

        async def broken_coro(event) -> None:
            raise RuntimeError("callback bug (coroutine)")

        def broken_plain(event) -> None:
            raise RuntimeError("callback bug (plain)")

        async def record(event) -> None:
            seen.append(event.get("Uniqueid"))

        async def slow(event) -> None:
            slow_started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                slow_cancelled.set()
                raise

        client.subscribe("IvrCall*", broken_coro)
        client.subscribe("IvrCallEnded", broken_plain)
        client.subscribe("IvrCallEnded", record)
        client.subscribe("Hangup", slow)
        await client.connect(timeout=2)
        for n in range(3):
            await fake.event(("Event", "UserEvent"), ("Privilege", "user,all"),
                             ("UserEvent", "IvrCallEnded"), ("Uniqueid", f"node-1795722896.{n}"))
        await fake.event(("Event", "Hangup"), ("Privilege", "call,all"),
                         ("Channel", "PJSIP/trunk-00000001"), ("Uniqueid", "node-1795722896.0"),
                         ("Cause", "16"))
        await eventually(lambda: len(seen) == 3, 2, "three events")
        await asyncio.wait_for(slow_started.wait(), 2)
        assert seen == [f"node-1795722896.{n}" for n in range(3)]
        await eventually(lambda: caplog.text.count("callback bug (coroutine)") >= 3, 2,
                         "the coroutine errors to be logged")
        assert caplog.text.count("AMI event callback failed") == 3
        assert "ami-event-IvrCallEnded" in caplog.text
        await client.close()  # the slow callback is still running: close() ends it
        assert slow_cancelled.is_set()


async def test_event_list_matched_by_action_id_is_not_dispatched(no_leaked_tasks):
    async with fake_ami() as fake:
        events: list[str] = []

        async def tree(fake: FakeAmi, session: Session, action: Received):
            aid = ("ActionID", action.action_id)
            await session.send(frame(("Response", "Success"), aid, ("EventList", "start"),
                                     ("Message", "Result will follow")))
            await session.send(frame(("Event", "DBGetTreeResponse"), aid,
                                     ("Key", "/ivrend/x-1.2"), ("Val", "done;1795722900")))
            # An unrelated event in the middle of the list (no ActionID).
            await session.send(frame(("Event", "Newchannel"), ("Privilege", "call,all"),
                                     ("Channel", "PJSIP/trunk-00000002")))
            await session.send(frame(("Event", "DBGetTreeResponse"), aid,
                                     ("Key", "/ivrend/node-1795722896.7"), ("Val", "a: b c")))
            await session.send(frame(("Event", "DBGetTreeComplete"), aid,
                                     ("EventList", "Complete"), ("ListItems", "2")))

        fake.responders["dbgettree"] = tree
        client = make_client(fake)
        client.subscribe("*", lambda event: events.append(event.get("Event")))
        await client.connect(timeout=2)
        try:
            tree_ = await client.db_get_tree("ivrend")
            assert tree_ == {"x-1.2": "done;1795722900", "node-1795722896.7": "a: b c"}
            [sent] = fake.actions("DBGetTree")
            assert sent.get("Family") == "ivrend"
            await eventually(lambda: "Newchannel" in events, 2, "the Newchannel event")
            assert "DBGetTreeResponse" not in events and "DBGetTreeComplete" not in events
        finally:
            await client.close()


async def test_db_get_tree_of_an_empty_family(no_leaked_tasks):
    async with fake_ami() as fake:
        async def empty(fake: FakeAmi, session: Session, action: Received):
            aid = ("ActionID", action.action_id)
            await session.send(frame(("Response", "Success"), aid, ("EventList", "start"),
                                     ("Message", "Result will follow")))
            await session.send(frame(("Event", "DBGetTreeComplete"), aid,
                                     ("EventList", "Complete"), ("ListItems", "0")))

        fake.responders["dbgettree"] = empty
        client = make_client(fake)
        await client.connect(timeout=2)
        try:
            assert await client.db_get_tree("ivrstamp") == {}
        finally:
            await client.close()


async def test_async_originate_resolves_on_its_originate_response(no_leaked_tasks):
    async with fake_ami() as fake:
        async def queued_then_answered(fake: FakeAmi, session: Session, action: Received):
            aid = ("ActionID", action.action_id)
            await session.send(frame(("Response", "Success"), aid,
                                     ("Message", "Originate successfully queued")))
            await asyncio.sleep(0.05)  # the clinician's phone rings, then answers
            await session.send(frame(("Event", "OriginateResponse"), ("Privilege", "call,all"),
                                     aid, ("Response", "Success"),
                                     ("Channel", "PJSIP/100-00000003"), ("Reason", "4"),
                                     ("Uniqueid", "node-1795722896.9")))

        fake.responders["originate"] = queued_then_answered
        client = make_client(fake)
        await client.connect(timeout=2)
        try:
            replies = await client.originate({"Channel": "PJSIP/100@trunk", "Exten": "s",
                                              "Context": "ivr-callback", "Priority": "1",
                                              "Async": "true"})
            assert [r.get("Event") or r.get("Response") for r in replies] == [
                "Success", "OriginateResponse"]
            assert fake.actions("Originate")[0].get("Async") == "true"
        finally:
            await client.close()


async def test_db_get_tree_not_found_is_empty(no_leaked_tasks):
    async with fake_ami() as fake:
        fake.responders["dbgettree"] = lambda fake, session, action: session.send(frame(
            ("Response", "Error"), ("ActionID", action.action_id),
            ("Message", "Database entry not found")))
        client = make_client(fake)
        await client.connect(timeout=2)
        try:
            assert await client.db_get_tree("ivrstamp") == {}
        finally:
            await client.close()


async def test_db_get_tree_error_is_reported_at_once(no_leaked_tasks):
    async with fake_ami() as fake:
        fake.responders["dbgettree"] = lambda fake, session, action: session.send(frame(
            ("Response", "Error"), ("ActionID", action.action_id),
            ("Message", "Unable to search database")))
        client = make_client(fake, action_timeout=2.0)
        await client.connect(timeout=2)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(AmiActionError) as err:
                await client.db_get_tree("ivrend")
            assert "Unable to search database" in str(err.value)
            assert loop.time() - started < 1.0  # not a timeout in disguise
            assert client.connected
        finally:
            await client.close()


async def test_close_logs_off_and_leaves_nothing_running(no_leaked_tasks, caplog):
    async with fake_ami() as fake:
        client = make_client(fake, ping_interval=0.05, ping_timeout=0.5)
        await client.connect(timeout=2)
        await asyncio.sleep(0.15)  # a few watchdog pings
        await client.close()
        assert [a.name for a in fake.received][-1] == "Logoff"
        assert not client.connected
        await asyncio.wait_for(fake.sessions[0].closed.wait(), 2)
        await assert_no_tasks_left(timeout=0.5)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
