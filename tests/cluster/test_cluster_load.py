"""The drills under load (`make drill`, issue 15 item 6): calls placed continuously
through Kamailio to two real nodes by reacting callers, four at once, while (c)
PostgreSQL is restarted, (a) one node's Asterisk is SIGKILLed, (b) one controller is
SIGKILLed. Each prints its counts.

(c) PostgreSQL restarted during 20 calls, and again while the night's deliveries are in
flight. Counted: intake fields lost, duplicate clinician calls, duplicate deliveries
(each must be 0), and what the practice's servers received per delivery (each exactly
once). Every fifth call is urgent (key 1): the on-call chain rings the clinicians on the
gateway, whose phones are busy, so each urgent call rings the chain's five legs (nurse
twice, physician twice, the director once) and is promised a call-back, attempted every
RENOTIFY_S against the busy phones. The others leave a message; every fourth call takes
the whole intake (date of birth, name, reason), the rest only the callback number.
PostgreSQL is stopped (a crash: immediate) once six calls have ended and started again a
few seconds later. A call the controller was serving goes on from its journal; a call
that arrives while no controller can create its record goes to the dialplan's fallback
(message, record made from its stamp later): counted apart, its keys were never
captured as intake. After the calls the clinicians' phones answer and acknowledge (a
call-back's next attempt rings one: each call-back must end acknowledged once, no
attempt placed twice), and the night's report is made by two workers at once (two
nodes' schedulers); the four controllers' outboxes deliver it and its notes to a real
SMTP server (STARTTLS) and a real webhook endpoint on this test's ports (the fax still
goes nowhere). The endpoint answers its first few requests and keeps the next ones
waiting while PostgreSQL is crashed and started again; then it answers them, and every
e-mail and webhook delivery must have reached its server exactly once.

(a) and (b): 12 calls each, the kill once four have ended; what the cut callers heard,
where every later call went and how it ended, and that each call is in the record once
with its end folded in once after the killed part is started again.

Slow (about 10 minutes on a loaded 2-core machine): runs with IVR_DRILLS=1 (`make drill`,
which .ci/run runs after `make test`).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from harness import wait_for
from sqlalchemy import select
from support import receivers
from support.cluster import (
    QUICK,
    QUICK_PRACTICE,
    SUNNY,
    RealCluster,
    cluster_port_base,
    running_cluster,
)
from support.plans import answer
from support.reacting import ACCEPTS
from support.receivers import Receiver

from ivr.caller.plan import BUSY, AwaitEnd, CallPlan, PhoneBook, Press, turn
from ivr.db.engine import unreachable
from ivr.db.kinds import CallbackStatus, LegStatus
from ivr.db.models import Call, OncallCallback, OncallLeg
from ivr.delivery.models import EMAIL, SUCCEEDED, WEBHOOK, Delivery, DeliveryAttempt
from ivr.documents import store
from ivr.documents.report import NightWindow
from ivr.rules import load_rules

pytestmark = [
    pytest.mark.pbx,
    pytest.mark.skipif(os.environ.get("IVR_DRILLS") != "1",
                       reason="a drill: `make drill` (IVR_DRILLS=1) runs it"),
    pytest.mark.skipif(not Path("/usr/sbin/kamailio").exists() or
                       not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")),
                       reason="kamailio or postgresql is not installed (make test does)"),
]
CALLS, AT_ONCE, CRASH_AFTER = 20, 4, 6
RESTART_S = 3.0  # PostgreSQL down this long each time (then its own start-up)
LIVE_LEGS = 5  # the quick practice's chain: nurse x2, physician x2, director x1 (busy)
# The rules' call-back minutes are 8 s here: an attempt every 40 s (renotify 5 minutes),
# 10 attempts (400 s) outlast the calls, so no call-back runs out before the clinicians
# answer, and the first ones fall across the first restart.
MINUTE_SECONDS = "8"
RENOTIFY_S = 5 * int(MINUTE_SECONDS)
HOOK_ENV, HOOK_SECRET = "SUNNY_WEBHOOK_SECRET", "load-drill-webhook-secret"
HOOK_FIRST = 3  # webhook requests answered at once; the next ones wait out the restart
CB_ACKNOWLEDGED, LEG_ACCEPTED = CallbackStatus.ACKNOWLEDGED, LegStatus.ACCEPTED


def _call(cluster: RealCluster, n: int) -> tuple[str, str, CallPlan, list[str]]:
    """Call n: (dialled, caller, plan, the intake fields its caller gives)."""
    caller = f"+1617555{1000 + n:04d}"
    if n % 5 == 4:  # urgent: the on-call chain
        return QUICK, caller, CallPlan(caller_id=caller, steps=(
            *answer("1"), *answer("1"))), ["callback"]
    if n % 4 == 0:
        return SUNNY, caller, cluster.intake_plan(caller), [
            "callback", "dob", "name", "reason"]
    return QUICK, caller, RealCluster.quick_plan(caller), ["callback"]


@pytest.fixture(scope="module")
def receivers_and_cluster(tmp_path_factory):
    """The quick practice's e-mail and webhook receivers, real servers on this test
    process's own ports (the controllers send from processes of their own), then the
    cluster, whose controllers send to them."""
    base = cluster_port_base()
    smtp_port, hook_port = base + 45, base + 46
    hook = Receiver(HOOK_SECRET)
    with receivers.smtp_server(tmp_path_factory.mktemp("smtp"), smtp_port) as (
            mailbox, cert), receivers.serving(hook.app(), hook_port):
        env = {"IVR_SMTP_HOST": "127.0.0.1", "IVR_SMTP_PORT": str(smtp_port),
               "IVR_SMTP_TLS": "starttls", "IVR_SMTP_CAFILE": str(cert),
               "IVR_SMTP_FROM": "service@answering.example", HOOK_ENV: HOOK_SECRET,
               "IVR_ONCALL_MINUTE_SECONDS": MINUTE_SECONDS}
        with running_cluster("ivr-test-load-", "load drill: after hours", extra_env=env,
                             quick_webhook=f"http://127.0.0.1:{hook_port}/quick") as c:
            yield c, mailbox, hook


def _place_all(cluster: RealCluster, on_ended, calls: list[tuple[str, CallPlan]] | None = None,
               placed: dict[int, float] | None = None) -> dict[int, Any]:  # noqa: ANN001
    """`calls` ((dialled, plan) each; default: the PostgreSQL drill's CALLS), AT_ONCE at a
    time: each slot places its next call when its last one ends. Returns the reports
    by call number; `on_ended(ended so far)` after each; `placed`: filled with each
    call's monotonic time of dialling."""
    if calls is None:
        calls = [(d, plan) for d, _c, plan, _f in (_call(cluster, n) for n in range(CALLS))]
    reports: dict[int, Any] = {}
    numbers = iter(range(len(calls)))
    lock = threading.Lock()

    def slot(k: int) -> None:
        while True:
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            dialled, plan = calls[n]
            if placed is not None:
                placed[n] = time.monotonic()
            reports[n] = cluster.dial(plan, k, to=dialled).wait()
            with lock:
                on_ended(len(reports))

    threads = [threading.Thread(target=slot, args=(k,)) for k in range(AT_ONCE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return reports


def _restart(cluster: RealCluster) -> None:
    """PostgreSQL crashed (immediate stop) and started again RESTART_S later."""
    cluster.postgres.stop("immediate")
    threading.Timer(RESTART_S, cluster.postgres.start).start()


def _database_back(cluster: RealCluster) -> None:
    """Waits until PostgreSQL runs and answers a query (not while it says "starting up")."""
    def answers() -> bool:
        try:
            return cluster.postgres.is_running() and cluster.read(_answers)
        except Exception as exc:  # noqa: BLE001 (only an unreachable database is waited for)
            if not unreachable(exc):
                raise
            return False
    wait_for(answers, 60, "PostgreSQL back and answering")


def test_postgresql_restarted_during_20_calls(receivers_and_cluster, capsys):
    cluster, mailbox, hook = receivers_and_cluster
    started = datetime.now(UTC)
    crashed = threading.Event()

    def on_ended(ended: int) -> None:
        if ended >= CRASH_AFTER and not crashed.is_set():
            crashed.set()
            _restart(cluster)

    reports = _place_all(cluster, on_ended)
    assert crashed.is_set()
    _database_back(cluster)
    records: dict[int, dict[str, Any]] = {}
    for n in range(CALLS):
        _dialled, caller, _plan, _fields = _call(cluster, n)
        records[n] = cluster.finished(caller, timeout=180)

    # Intake: every field a served caller gave is in the record (the journal's writes
    # land a few seconds after the database is back: waited for).
    def lost_fields() -> tuple[list[str], list[int]]:
        lost, fallback = [], []
        for n in range(CALLS):
            detail = cluster.show(records[n]["id"])
            if detail["fallback_reason"] or not detail["seen_by_controller"]:
                fallback.append(n)
                continue
            lost += [f"call {n}: {f}" for f in _call(cluster, n)[3] if f not in detail["intake"]]
        return lost, fallback
    try:
        lost, fallback = wait_for(lambda: (got := lost_fields()) and not got[0] and got,
                                  90, "every served caller's answers in the record")
    except AssertionError:
        lost, fallback = lost_fields()
    # Every call a controller served went as planned (one in the fallback hears another
    # script than its plan's, so its plan may not fit).
    failed = [n for n, r in reports.items() if not r.ok and n not in fallback]
    assert not failed, {n: reports[n].explain() for n in failed}
    urgent = [records[n]["id"] for n in range(CALLS) if n % 5 == 4 and n not in fallback]
    assert urgent, "no urgent call was served by a controller"

    # The call-backs promised so far rang the busy phones (an attempt every
    # RENOTIFY_S, across the restart); from now on the chain's clinicians acknowledge.
    cluster.answer_phones(PhoneBook({p[1:]: ACCEPTS for p in _clinician_phones(cluster)},
                                    BUSY))

    # Deliveries: the night's report, made by two workers at once, delivered by the
    # controllers' outboxes (4 of them on 2 nodes). The webhook answers its first
    # HOOK_FIRST requests and keeps the next ones until PostgreSQL has been restarted
    # (a crash while sends are in flight); the e-mail is taken at once.
    hook.hold_after = HOOK_FIRST
    made = cluster.read(lambda db: _two_reports(db, cluster, started))
    assert sorted(m.status for m in made).count("made") == 1, made
    ids = next(m.deliveries for m in made if m.status == "made")
    wait_for(lambda: hook.held and cluster.read(lambda db: _answered_recorded(
        db, ids, HOOK_FIRST)), 120, "the e-mail and the first webhooks recorded as "
        "delivered while further webhooks wait for their answer")
    _restart(cluster)
    _database_back(cluster)
    held = hook.held
    hook.release.set()
    wait_for(lambda: cluster.read(lambda db: _attempted(db, ids)), 120,
             "each delivery tried at least once")
    wait_for(lambda: cluster.read(lambda db: _succeeded(db, ids)), 180,
             "every e-mail and webhook delivery recorded as delivered")
    deliveries, attempts = cluster.read(lambda db: _deliveries(db, ids))
    keys = Counter((d.document_kind, d.document_id, d.channel, d.destination)
                   for d in deliveries)
    tries = Counter((a.delivery_id, a.attempt_no) for a in attempts)
    duplicate_deliveries = sum(v - 1 for v in keys.values()) + sum(
        v - 1 for v in tries.values())
    # What the servers received, per delivery (the e-mail's Message-ID and the webhook's
    # X-IVR-Delivery header name it): each e-mail and webhook delivery exactly once.
    sent = {d.id: d.channel for d in deliveries if d.id in ids}
    mails = Counter(_delivery_of(env) for env, _tls in mailbox.messages)
    posts = Counter(r["delivery"] for r in hook.received if r["valid"])
    expected = {i: 1 for i, ch in sent.items() if ch in (EMAIL, WEBHOOK)}
    received = {**{i: mails[i] for i in sent if sent[i] == EMAIL},
                **{i: posts[i] for i in sent if sent[i] == WEBHOOK}}
    strays = (set(mails) | set(posts)) - set(sent)

    # Clinician calls: the chain's legs of each urgent call, each placed once; each
    # call-back's attempts each placed once, until one acknowledged it.
    def acknowledged() -> tuple | None:
        legs, cbs, cb_legs = cluster.read(lambda db: _legs_and_callbacks(db, urgent))
        # Each acknowledgement's leg recorded as accepted and ended (not every leg: one
        # whose end fell in an outage stays open in the record, counted below). The
        # acknowledgement and its leg's outcome are two writes (the leg's through the
        # journal, a moment later), so the call-back alone is not the end.
        accepted = Counter(leg.callback_id for leg in cb_legs
                           if leg.status == LEG_ACCEPTED and leg.ended_at)
        done = len(cbs) == len(urgent) and all(
            cb.status == CB_ACKNOWLEDGED and accepted[cb.id] for cb in cbs)
        return (legs, cbs, cb_legs) if done else None
    try:
        legs, cbs, cb_legs = wait_for(acknowledged, 300, "every call-back acknowledged")
    except AssertionError:
        legs, cbs, cb_legs = cluster.read(lambda db: _legs_and_callbacks(db, urgent))
    extra_legs = sum(max(0, legs[c] - LIVE_LEGS) for c in urgent)
    cb_attempts = Counter((leg.callback_id, leg.attempt_no) for leg in cb_legs)
    duplicate_clinician_calls = extra_legs + sum(v - 1 for v in cb_attempts.values())
    acks = Counter(leg.callback_id for leg in cb_legs if leg.status == LEG_ACCEPTED)
    acked_once = [cb.id for cb in cbs if cb.status == CB_ACKNOWLEDGED and acks[cb.id] == 1]
    left_open = sum(1 for leg in cb_legs if leg.ended_at is None)

    with capsys.disabled():
        print(f"\n  load drill: {CALLS} calls ({AT_ONCE} at once), PostgreSQL crashed "
              f"after {CRASH_AFTER} ended and again while the night's deliveries were "
              f"in flight, each started {RESTART_S:.0f} s later; served by a controller "
              f"{CALLS - len(fallback)}, by the fallback while no record could be made "
              f"{len(fallback)}; intake fields lost {len(lost)}; duplicate clinician calls "
              f"{duplicate_clinician_calls} ({sum(legs.values())} chain legs for "
              f"{len(urgent)} urgent calls; {len(cbs)} call-backs, {len(cb_legs)} "
              f"call-back legs (one per {RENOTIFY_S} s), {len(acked_once)} acknowledged "
              f"exactly once, {left_open} left open in the record); "
              f"duplicate deliveries {duplicate_deliveries} ({len(deliveries)} deliveries, "
              f"{len(attempts)} attempts); received once each: e-mail "
              f"{sum(v == 1 for i, v in received.items() if sent[i] == EMAIL)}/"
              f"{sum(ch == EMAIL for ch in sent.values())}, webhook "
              f"{sum(v == 1 for i, v in received.items() if sent[i] == WEBHOOK)}/"
              f"{sum(ch == WEBHOOK for ch in sent.values())} ({held} held across the "
              f"restart), received twice or more {sum(v > 1 for v in received.values())}")
    assert lost == [], lost
    assert duplicate_clinician_calls == 0
    assert len(acked_once) == len(urgent), [(cb.id, cb.status, acks[cb.id]) for cb in cbs]
    assert duplicate_deliveries == 0
    assert held >= 1
    assert received == expected and not strays, (received, strays)


# --- drills (a) and (b): a node's Asterisk, then a controller, killed under load ----------
KILL_CALLS, KILL_AFTER = 12, 4
# A caller who hears nothing for this long gives up (dead air on a killed node); the
# service's own prompts are never that far apart, even on a loaded machine.
GIVE_UP_S = 60.0


def _kill_plan(caller: str) -> CallPlan:
    """The quick practice's call (caller ID accepted, a message), giving up after
    GIVE_UP_S of waiting at any step."""
    return CallPlan(caller_id=caller, steps=(
        turn(timeout_s=GIVE_UP_S), Press("1"), turn(timeout_s=GIVE_UP_S), Press("4"),
        AwaitEnd(GIVE_UP_S)))


def _kill_callers(first: int) -> list[str]:
    return [f"+1617556{first + n:04d}" for n in range(KILL_CALLS)]


def _records(cluster: RealCluster, callers: list[str]) -> dict[int, list[dict[str, Any]]]:
    return {n: cluster.calls_from(c) for n, c in enumerate(callers)}


def _ended_events(cluster: RealCluster, call_id: str) -> int:
    return sum(e["kind"] == "call.ended" for e in cluster.show(call_id)["timeline"])


def _all_reconciled(cluster: RealCluster, callers: list[str],
                    unseen: tuple[int, ...] = ()) -> dict[int, list] | None:
    """Each call's record, once every one (but the `unseen`, never recorded) is ended
    and reconciled."""
    found = _records(cluster, callers)
    done = all(len(r) == 1 and r[0]["ended_at"] and r[0]["reconciled_at"]
               for n, r in found.items() if n not in unseen)
    return found if done else None


async def _open_calls(db, since: datetime, until: datetime) -> list[tuple[str, str]]:  # noqa: ANN001
    """(call id, node) of the calls started between `since` and `until`, still up,
    oldest first."""
    async with db.session() as s:
        rows = (await s.execute(select(Call.id, Call.node).where(
            Call.started_at > since, Call.started_at < until,
            Call.ended_at.is_(None)).order_by(Call.started_at))).all()
    return [(i, n) for i, n in rows]


def _kill_during(cluster: RealCluster, calls: list[tuple[str, CallPlan]],
                 kill) -> tuple[dict[int, Any], dict[int, float], float, Any]:  # noqa: ANN001
    """Place `calls` continuously; once KILL_AFTER have ended, wait for a call that has
    been up a few seconds and `kill(call id, node)` what serves it. Returns the reports,
    the calls' dialling times, the kill's time and what `kill` returned."""
    since = datetime.now(UTC)
    ended_enough = threading.Event()
    killed: list[tuple[float, Any]] = []

    def killer() -> None:
        ended_enough.wait()
        def busy() -> tuple[str, str] | None:
            up = cluster.read(lambda db: _open_calls(
                db, since, datetime.now(UTC) - timedelta(seconds=4)))
            return up[0] if up else None
        call_id, node = wait_for(busy, 120, "a drill call up for a few seconds",
                                 interval=0.5)
        what = kill(call_id, node)
        killed.append((time.monotonic(), what))

    thread = threading.Thread(target=killer)
    thread.start()
    placed: dict[int, float] = {}

    def on_ended(ended: int) -> None:
        if ended >= KILL_AFTER:
            ended_enough.set()
    reports = _place_all(cluster, on_ended, calls, placed)
    ended_enough.set()
    thread.join()
    assert killed, "the kill did not happen"
    return reports, placed, killed[0][0], killed[0][1]


def test_an_asterisk_node_killed_during_continuous_calls(receivers_and_cluster, capsys):
    """Drill (a): calls placed continuously through Kamailio, four at once; once four have
    ended, the Asterisk of a node serving a call is SIGKILLed. Its callers hear dead air
    and give up; every call placed after the kill lands on the other node (Kamailio
    passes an INVITE the dead node does not answer to the next after --fail-over-ms, and
    its probes soon mark the node inactive) and completes. `ivr cluster up` brings the
    node back; its controllers record each cut call pbx_failure, once."""
    cluster, _mailbox, _hook = receivers_and_cluster
    callers = _kill_callers(0)

    def kill(_call_id: str, node: str) -> str:
        os.kill(cluster.node(node)["asterisk"]["pid"], signal.SIGKILL)
        return node
    reports, placed, killed_at, victim = _kill_during(
        cluster, [(QUICK, _kill_plan(c)) for c in callers], kill)
    survivor = next(n for n in cluster.names if n != victim)
    after = [n for n in range(KILL_CALLS) if placed[n] > killed_at]
    answered_in = [reports[n].named("answered")[0]["t"] - reports[n].named("dialling")[0][
        "t"] for n in after if reports[n].named("answered")]
    before = _records(cluster, callers)
    cut = [n for n in range(KILL_CALLS) if n not in after and before[n]
           and before[n][0]["node"] == victim and not before[n][0]["ended_at"]]
    # Placed just before the kill and taken by the dying node before any controller saw
    # it: no record anywhere (the caller heard ringing, then nothing). Counted apart.
    unseen = tuple(n for n in range(KILL_CALLS) if n not in after and not before[n])
    status = cluster.up()  # restarts that Asterisk only
    assert all(n["asterisk"]["running"] for n in status["nodes"]), status
    records = wait_for(lambda: _all_reconciled(cluster, callers, unseen), 180,
                       "every drill call ended and reconciled, the cut ones too")
    completed = [n for n in after if reports[n].ok
                 and records[n][0]["end_reason"] == "completed"]
    on_survivor = [n for n in after if records[n][0]["node"] == survivor]
    pbx_failure = [n for n in cut if records[n][0]["end_reason"] == "pbx_failure"]
    twice = [n for n in range(KILL_CALLS) if n not in unseen
             and _ended_events(cluster, records[n][0]["id"]) != 1]
    others = [n for n in range(KILL_CALLS) if n not in after and n not in cut
              and n not in unseen]
    others_done = [n for n in others if reports[n].ok]
    wait_for(lambda: cluster.dispatcher(victim).startswith("active"), 60,
             f"{victim} active again")
    with capsys.disabled():
        print(f"\n  node drill: {KILL_CALLS} calls ({AT_ONCE} at once) through Kamailio, "
              f"{victim}'s Asterisk SIGKILLed mid-call after {KILL_AFTER} ended: "
              f"{len(cut)} calls on it cut (the callers heard dead air and gave up after "
              f"{GIVE_UP_S:.0f} s; recorded pbx_failure when it was back: "
              f"{len(pbx_failure)}; taken by it before a controller saw them, so in no "
              f"record: {len(unseen)}); {len(others_done)}/{len(others)} other calls "
              f"placed before the kill completed; placed after the kill {len(after)}: "
              f"completed {len(completed)}, on {survivor} {len(on_survivor)}, failed "
              f"{len(after) - len(completed)}, slowest answer (INVITE to 200 OK) "
              f"{max(answered_in, default=0) * 1000:.0f} ms; calls ended in the record "
              f"other than "
              f"once {len(twice)}")
    assert cut, "no call was cut: the drill showed nothing"
    assert after and len(completed) == len(after), {n: reports[n].explain() for n in after}
    assert on_survivor == after
    assert pbx_failure == cut
    assert others_done == others, {n: reports[n].explain() for n in others}
    assert twice == []


def test_a_controller_killed_during_continuous_calls(receivers_and_cluster, capsys):
    """Drill (b): calls placed continuously through Kamailio to both nodes, four at once;
    once four have ended, the controller serving a call is SIGKILLed. The calls it was
    serving reach the dialplan's fallback (controller-missing) and leave a message; every
    new call is served by a controller (the node's other one, or the other node's);
    `ivr cluster up` starts the killed one again, and every call is in the record once,
    its end folded in once."""
    cluster, _mailbox, _hook = receivers_and_cluster
    callers = _kill_callers(100)

    def kill(call_id: str, node: str) -> dict[str, Any]:
        serving = [c for c in cluster.node(node)["controllers"]
                   if f"call {call_id}" in Path(c["log"]).read_text()]
        assert len(serving) == 1, (call_id, serving)
        os.kill(serving[0]["pid"], signal.SIGKILL)
        return {**serving[0], "node": node}
    reports, placed, killed_at, victim = _kill_during(
        cluster, [(QUICK, _kill_plan(c)) for c in callers], kill)
    status = cluster.up()  # the killed controller again
    assert all(c["running"] for n in status["nodes"] for c in n["controllers"]), status
    records = wait_for(lambda: _all_reconciled(cluster, callers), 180,
                       "every drill call ended and reconciled")
    rows = {n: records[n][0] for n in range(KILL_CALLS)}
    fallback = [n for n in range(KILL_CALLS)
                if rows[n]["fallback_reason"] == "controller-missing"]
    after = [n for n in range(KILL_CALLS) if placed[n] > killed_at]
    served = [n for n in range(KILL_CALLS) if n not in fallback]
    completed = [n for n in served if reports[n].ok and rows[n]["end_reason"] == "completed"]
    # The fallback rings the practice's fallback numbers (the clinicians' phones answer
    # once drill (c) has run) or takes a message; a caller may also give up in it.
    messages = [n for n in fallback if rows[n]["end_reason"] in (
        "fallback_answered", "fallback_recorded", "fallback_abandoned")]
    in_fallback_after = [n for n in after if n in fallback]
    twice = [n for n in range(KILL_CALLS) if _ended_events(cluster, rows[n]["id"]) != 1]
    with capsys.disabled():
        print(f"\n  controller drill: {KILL_CALLS} calls ({AT_ONCE} at once) through "
              f"Kamailio, a controller of {victim['node']} SIGKILLed mid-call after "
              f"{KILL_AFTER} ended: {len(fallback)} of its calls reached the dialplan's "
              f"fallback ({len(messages)} ended there: a fallback number answered, "
              f"the message taken or the caller gone); served by a controller "
              f"{len(served)}, completed {len(completed)}; "
              f"placed after the kill {len(after)}, in the fallback {len(in_fallback_after)}; "
              f"after its restart: calls in the record "
              f"{sum(len(r) for r in records.values())}/{KILL_CALLS}, ended other than "
              f"once {len(twice)}")
    assert fallback, "no call reached the fallback: the drill showed nothing"
    assert completed == served, {n: reports[n].explain() for n in served}
    assert messages == fallback, {n: rows[n] for n in fallback}
    assert in_fallback_after == [], "a call placed after the kill reached the fallback"
    assert twice == []


def _quick_practice(cluster: RealCluster, now: datetime) -> Any:
    """The test rules' quick practice; no time budget: the load takes longer than the
    controllers' 15 s on a machine as loaded as this drill's (seen)."""
    loaded = load_rules(cluster.env["IVR_RULES_PATH"], now=now, budget=None)
    assert loaded.rules is not None, [str(e) for e in loaded.errors]
    return loaded.rules.practices[QUICK_PRACTICE]


def _clinician_phones(cluster: RealCluster) -> list[str]:
    practice = _quick_practice(cluster, datetime.now(UTC))
    return [c.phone for c in practice.on_call.clinicians.values()]


def _delivery_of(envelope: Any) -> str:
    """The delivery id in an e-mail's Message-ID (<delivery-ID@domain>)."""
    message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
    found = re.fullmatch(r"<delivery-([^@>]+)@[^>]+>", str(message["Message-ID"]))
    return found.group(1) if found else ""


async def _answers(db) -> bool:  # noqa: ANN001
    async with db.session() as s:
        return (await s.scalar(select(1))) == 1


async def _legs_and_callbacks(db, urgent: list[str]) -> tuple[Counter, list, list]:  # noqa: ANN001
    """(live legs by call, the calls' call-backs, their call-back legs)."""
    async with db.session() as s:
        legs = (await s.scalars(select(OncallLeg).where(OncallLeg.call_id.in_(urgent)))).all()
        cbs = list((await s.scalars(select(OncallCallback).where(
            OncallCallback.call_id.in_(urgent)))).all())
    live = Counter(leg.call_id for leg in legs if leg.kind == "live")
    ids = {cb.id for cb in cbs}
    return live, cbs, [leg for leg in legs if leg.kind == "callback" and leg.callback_id in ids]


async def _two_reports(db, cluster: RealCluster, since: datetime) -> list:  # noqa: ANN001
    """The quick practice's report over the drill, made by two workers at once."""
    now = datetime.now(UTC)
    practice = _quick_practice(cluster, now)
    window = NightWindow(night=now.date(), closing=since, opening=now,
                         covers_from=since - timedelta(minutes=1))
    out = cluster.folder / "reports"
    return list(await asyncio.gather(*(
        store.make_report(db, practice, window, now, out_dir=out, worker=f"drill-{w}")
        for w in "ab")))


async def _attempted(db, ids: tuple[str, ...]) -> bool:  # noqa: ANN001
    async with db.session() as s:
        tried = set((await s.scalars(select(DeliveryAttempt.delivery_id).where(
            DeliveryAttempt.delivery_id.in_(ids)))).all())
    return tried == set(ids)


async def _answered_recorded(db, ids: tuple[str, ...], first: int) -> bool:  # noqa: ANN001
    """The e-mail and `first` webhook deliveries recorded as delivered, none of them in
    flight (so no answer the servers gave waits for its write when PostgreSQL goes)."""
    async with db.session() as s:
        rows = (await s.execute(select(Delivery.channel, Delivery.status).where(
            Delivery.id.in_(ids)))).all()
    ok = Counter(ch for ch, st in rows if st == SUCCEEDED)
    return ok[EMAIL] == 1 and ok[WEBHOOK] >= first


async def _succeeded(db, ids: tuple[str, ...]) -> bool:  # noqa: ANN001
    async with db.session() as s:
        rows = (await s.execute(select(Delivery.channel, Delivery.status).where(
            Delivery.id.in_(ids)))).all()
    return all(st == SUCCEEDED for ch, st in rows if ch in (EMAIL, WEBHOOK))


async def _deliveries(db, ids: tuple[str, ...]) -> tuple[list, list]:  # noqa: ANN001
    async with db.session() as s:
        deliveries = (await s.scalars(select(Delivery).where(
            Delivery.practice_id == QUICK_PRACTICE))).all()
        attempts = (await s.scalars(select(DeliveryAttempt).where(
            DeliveryAttempt.delivery_id.in_([d.id for d in deliveries])))).all()
    return list(deliveries), list(attempts)
