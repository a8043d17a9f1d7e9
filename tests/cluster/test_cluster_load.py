"""The drill under load (`make drill`, issue 15 item 6c): PostgreSQL restarted while 20
calls go through Kamailio to two real nodes, placed continuously by reacting callers,
four at once, and again while the night's deliveries are in flight. Counted and
printed: intake fields lost, duplicate clinician calls, duplicate deliveries (each must
be 0), and what the practice's servers received per delivery (each exactly once).

Every fifth call is urgent (key 1): the on-call chain rings the clinicians on the
gateway, whose phones are busy, so each urgent call rings the chain's five legs (nurse
twice, physician twice, the director once) and is promised a call-back, attempted every
RENOTIFY_S against the busy phones. The others leave a message; every fourth call takes
the whole intake (date of birth, name, reason), the rest only the callback number.
PostgreSQL is stopped (a crash: immediate) once six calls have ended and started again a
few seconds later. A call the controller was serving goes on from its journal; a call
that arrives while no controller can create its record goes to the dialplan's fallback
(message, record made from its stamp later): counted apart, its keys were never
captured as intake.

After the calls the clinicians' phones answer and acknowledge (a call-back's next
attempt rings one: each call-back must end acknowledged once, no attempt placed twice),
and the night's report is made by two workers at once (two nodes' schedulers); the four
controllers' outboxes deliver it and its notes to a real SMTP server (STARTTLS) and a
real webhook endpoint on this test's ports (the fax still goes nowhere). The endpoint
answers its first few requests and keeps the next ones waiting while PostgreSQL is
crashed and started again; then it answers them, and every e-mail and webhook delivery
must have reached its server exactly once.

Slow (about 5 minutes on a loaded 2-core machine): runs with IVR_DRILLS=1 (`make drill`,
which .ci/run runs after `make test`).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
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

from ivr.caller.plan import BUSY, CallPlan, PhoneBook
from ivr.db.engine import unreachable
from ivr.db.kinds import CallbackStatus, LegStatus
from ivr.db.models import OncallCallback, OncallLeg
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


def _place_all(cluster: RealCluster, on_ended) -> dict[int, Any]:  # noqa: ANN001
    """CALLS calls, AT_ONCE at a time: each slot places its next call when its last one
    ends. Returns the reports by call number."""
    reports: dict[int, Any] = {}
    numbers = iter(range(CALLS))
    lock = threading.Lock()

    def slot(k: int) -> None:
        while True:
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            dialled, _caller, plan, _fields = _call(cluster, n)
            reports[n] = cluster.dial(plan, k, to=dialled).wait()
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
        # The accepting legs ended (not every leg: one whose end fell in an outage
        # stays open in the record, counted below).
        done = len(cbs) == len(urgent) and all(
            cb.status == CB_ACKNOWLEDGED for cb in cbs) and all(
            leg.ended_at for leg in cb_legs if leg.status == LEG_ACCEPTED)
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
