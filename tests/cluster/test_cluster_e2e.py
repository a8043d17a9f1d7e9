"""The local cluster end to end: `ivr cluster up` starts PostgreSQL, two real Asterisk
nodes with two controllers each and Kamailio in front; reacting callers dial Kamailio.

The drills, in order (each leaves the cluster whole again with `ivr cluster up`, which
restarts only what is gone): calls land on both nodes and in the one database; a node's
Asterisk killed mid-call (the next calls land on the other node and complete; the lost
call is recorded pbx_failure when the node is back); a node's first controller killed
mid-call (that call reaches the dialplan's fallback, the next call is served by the
node's backup controller); PostgreSQL stopped mid-call (the caller reaches the fallback,
what was written stays, and exactly what is lost is printed). Then no secret is in any
log. Nodes on 127.0.0.5/.6, Kamailio on 127.0.0.4, ports 27000-27999.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from harness import REPO, wait_for
from support.plans import DOB_KEYS, NAME, REASON, answer, happy

from ivr.caller.client import CallReport, Phones, RunningCall, start_call
from ivr.caller.plan import BUSY, AwaitEnd, CallPlan, Listen, PhoneBook
from ivr.pbx.prompts import synthesize

pytestmark = [
    pytest.mark.pbx,
    pytest.mark.skipif(not Path("/usr/sbin/kamailio").exists() or
                       not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")),
                       reason="kamailio or postgresql is not installed (make test does)"),
]
SUNNY = "+16175550100"
PRACTICE = "sunny-pediatrics"
IN_GREETING = Listen(quiet_ms=0, min_voice_ms=1000)  # a second of the greeting heard


def _base_port() -> int:
    """250 ports in 27000-27999 for this test process (its xdist worker and run offset)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    worker = int(name[2:]) if name[2:].isdigit() else 0
    worker += int(os.environ.get("IVR_TEST_WORKER_OFFSET", "0") or 0)
    return 27000 + 250 * (worker % 4)


class Cluster:
    """The cluster as the tests drive it: its command line, its calls, its callers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.base = base = _base_port()
        self.prefix = f"e{os.getpid()}n"
        self.up_args = [
            "--nodes", "2", "--controllers", "2", "--prefix", self.prefix,
            "--entry", f"127.0.0.4:{base}", "--first-node", "127.0.0.5",
            "--db-port", str(base + 1), "--sip-port", str(base + 10),
            "--ami-port", str(base + 11), "--agi-port", str(base + 12), "--port-step", "10",
            "--rtp-start", str(base + 100), "--rtp-per-node", "40", "--probe-seconds", "1",
            "--fail-over-ms", "1500"]
        self.entry = f"127.0.0.4:{base}"
        self.gateway_port = base + 40
        self.env = {**os.environ, "IVR_DATA_DIR": str(folder / "base"),
                    "IVR_CLUSTER_DIR": str(folder), "IVR_TRUNK_MATCH": "127.0.0.1",
                    "IVR_GATEWAY_PORT": str(self.gateway_port),
                    "IVR_FAX_PORT": str(base + 41)}
        # The cluster's database, for the commands that read it (`calls`, `override`).
        self.db_env = {"IVR_DB_URL": f"postgresql+asyncpg://ivr@127.0.0.1:{base + 1}/ivr",
                       "IVR_DB_PASSWORD_FILE": str(folder / "postgres" / "password")}
        self.voices = folder / "voices"

    @property
    def names(self) -> list[str]:
        return [f"{self.prefix}1", f"{self.prefix}2"]

    def ivr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = self.env if args[0] == "cluster" else {**self.env, **self.db_env}
        out = subprocess.run([sys.executable, "-m", "ivr.cli", *args], env=env,
                             capture_output=True, text=True, cwd=REPO, timeout=400)
        if check:
            assert out.returncode == 0, f"ivr {' '.join(args[:3])}: {out.stderr[-3000:]}"
        return out

    def up(self) -> dict[str, Any]:
        return json.loads(self.ivr("cluster", "up", *self.up_args, "--json").stdout)

    def status(self) -> dict[str, Any]:
        return json.loads(self.ivr("cluster", "status", "--json", check=False).stdout)

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.status()["nodes"] if n["name"] == name)

    def dispatcher(self, name: str) -> str:
        return str(self.node(name)["dispatcher"])

    # --- calls ------------------------------------------------------------------------
    def calls_from(self, caller: str) -> list[dict[str, Any]]:
        return json.loads(self.ivr("calls", "list", "--caller", caller, "--json").stdout)

    def show(self, call_id: str) -> dict[str, Any]:
        return json.loads(self.ivr("calls", "show", call_id, "--json").stdout)

    def started(self, caller: str) -> dict[str, Any]:
        """The (only) call from `caller`, once its record exists."""
        found = wait_for(lambda: self.calls_from(caller), 90,
                         f"the call from {caller} to be recorded", interval=0.5)
        assert len(found) == 1, found
        return found[0]

    def finished(self, caller: str, timeout: float = 120) -> dict[str, Any]:
        """The call from `caller` once ended and reconciled (its channel's stamp in)."""
        def done() -> dict[str, Any] | None:
            found = self.calls_from(caller)
            return found[0] if found and found[0]["ended_at"] and found[0][
                "reconciled_at"] else None
        return wait_for(done, timeout, f"the call from {caller} to end and be reconciled",
                        interval=1.0)

    def dial(self, plan: CallPlan, slot: int, timeout_s: float = 300) -> RunningCall:
        """A reacting caller from 127.0.0.1 to Kamailio; `slot` 0-3: its ports."""
        work = Path(tempfile.mkdtemp(prefix=f"call{slot}-", dir=self.folder))
        return start_call(plan, self.entry, SUNNY, workdir=work, port=self.base + 50 + slot,
                          media_port=self.base + 180 + 16 * slot, media_ports=16,
                          timeout_s=timeout_s)

    def intake_plan(self, caller: str) -> CallPlan:
        v = {"name": str(synthesize(NAME, self.voices)),
             "reason": str(synthesize(REASON, self.voices))}
        return CallPlan(caller_id=caller, steps=tuple(happy(v) + answer("4")))


@pytest.fixture(scope="module")
def cluster():
    folder = Path(tempfile.mkdtemp(prefix="ivr-test-cluster-"))
    c = Cluster(folder)
    phones = None
    try:
        status = c.up()
        assert all(n["asterisk"]["running"] for n in status["nodes"]), status
        until = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
        c.ivr("override", "set", "--practice", PRACTICE, "--closed", "--until",
              until.isoformat(), "--reason", "e2e cluster: after hours")
        # The fallback dials the practice's fallback numbers through the gateway: busy
        # phones there, so a call in the fallback goes on to leave a message at once.
        phones = Phones(PhoneBook(default=BUSY), c.gateway_port, folder / "phones",
                        media_port=c.base + 244, media_ports=6)
        for name in c.names:
            wait_for(lambda name=name: c.dispatcher(name).startswith("active"), 60,
                     f"{name} active in Kamailio")
        yield c
    finally:
        if phones is not None:
            phones.stop()
        c.ivr("cluster", "down", check=False)
        out = c.ivr("cluster", "status", "--json", check=False).stdout
        for node in json.loads(out)["nodes"] if out.strip() else []:
            if node["asterisk"]["folder"]:
                shutil.rmtree(node["asterisk"]["folder"], ignore_errors=True)
        if os.environ.get("IVR_KEEP_TEST_DIRS") != "1":
            shutil.rmtree(folder, ignore_errors=True)


def _complete(report: CallReport, call: dict[str, Any]) -> None:
    assert report.ok, report.explain()
    assert call["end_reason"] == "completed" and call["result"] == "done", call
    assert call["practice_id"] == PRACTICE and call["disposition"] == "routine"


def test_calls_through_kamailio_land_on_both_nodes_and_in_one_database(cluster):
    callers = ["+16175550401", "+16175550402"]
    running = [cluster.dial(cluster.intake_plan(n), slot) for slot, n in enumerate(callers)]
    reports = [call.wait() for call in running]
    records = [cluster.finished(n) for n in callers]
    for report, call in zip(reports, records, strict=True):
        _complete(report, call)
        intake = cluster.show(call["id"])["intake"]
        assert intake["dob"]["value"] == "1990-01-02" and intake["dob"]["confirmed"]
        assert intake["name"]["recording_path"] and intake["reason"]["recording_path"]
    # Round robin over the two nodes; both wrote into the one PostgreSQL.
    assert sorted(c["node"] for c in records) == cluster.names


def test_an_asterisk_node_killed_mid_call(cluster):
    """SIGKILL one node's Asterisk while a caller is on it: that caller hears nothing more
    (dead air) until they give up; the next calls land on the other node and complete.
    When `ivr cluster up` brings the node back, its controllers record the lost call
    pbx_failure."""
    lost_caller, next_callers = "+16175550411", ["+16175550412", "+16175550413"]
    lost = cluster.dial(CallPlan(caller_id=lost_caller,
                                 steps=(IN_GREETING, AwaitEnd(45))), 0)
    victim = cluster.started(lost_caller)["node"]
    survivor = next(n for n in cluster.names if n != victim)
    wait_for(lambda: any(e["event"] == "heard" for e in lost.events()), 60,
             "the caller to hear the greeting")
    os.kill(cluster.node(victim)["asterisk"]["pid"], signal.SIGKILL)
    # The next calls, at once: a call Kamailio sends to the dead node first is passed on
    # to the other after --fail-over-ms; the probes soon mark the dead node inactive.
    running = [cluster.dial(cluster.intake_plan(n), slot + 1)
               for slot, n in enumerate(next_callers)]
    for caller, call in zip(next_callers, running, strict=True):
        report = call.wait()
        record = cluster.finished(caller)
        _complete(report, record)
        assert record["node"] == survivor, record
    assert cluster.dispatcher(victim).startswith("inactive")
    heard = lost.wait()
    assert not heard.ok and "did not end the call" in (heard.error or ""), heard.explain()
    assert cluster.calls_from(lost_caller)[0]["ended_at"] is None  # open until the node is back
    status = cluster.up()  # restarts that Asterisk only
    assert cluster.names == [n["name"] for n in status["nodes"]]
    record = cluster.finished(lost_caller)
    assert record["end_reason"] == "pbx_failure" and record["node"] == victim, record
    wait_for(lambda: cluster.dispatcher(victim).startswith("active"), 60,
             f"{victim} active again")


def test_a_controller_killed_its_backup_takes_the_next_calls(cluster):
    """Node 2 drained, so every call goes to node 1. SIGKILL node 1's first controller
    during a call: that call reaches the dialplan's fallback (controller-missing) and
    leaves a message; the next call finds the first controller's port closed and is
    served from start to end by the node's second controller."""
    node1, node2 = cluster.names
    cluster.ivr("cluster", "drain", node2)
    try:
        orphan_caller, next_caller = "+16175550421", "+16175550422"
        orphan = cluster.dial(CallPlan(caller_id=orphan_caller,
                                       steps=(IN_GREETING, AwaitEnd(240))), 0)
        assert cluster.started(orphan_caller)["node"] == node1
        wait_for(lambda: any(e["event"] == "heard" for e in orphan.events()), 60,
                 "the caller to hear the greeting")
        first, second = cluster.node(node1)["controllers"]
        os.kill(first["pid"], signal.SIGKILL)
        wait_for(lambda: not cluster.node(node1)["controllers"][0]["running"], 30,
                 "the first controller gone")
        served = cluster.dial(cluster.intake_plan(next_caller), 1)
        report = served.wait()
        record = cluster.finished(next_caller)
        _complete(report, record)
        assert record["node"] == node1
        assert f"call {record['id']}" in Path(second["log"]).read_text()
        assert f"call {record['id']}" not in Path(first["log"]).read_text()
        assert orphan.wait().ok
        kept = cluster.finished(orphan_caller)
        assert kept["fallback_reason"] == "controller-missing", kept
        assert kept["end_reason"] in ("fallback_recorded", "fallback_abandoned"), kept
    finally:
        cluster.ivr("cluster", "undrain", node2)
    status = cluster.up()  # the first controller again
    assert all(c["running"] for c in status["nodes"][0]["controllers"]), status


def test_the_database_stopped_mid_call(cluster, capsys):
    """PostgreSQL crashes (immediate stop) once the caller's first answer is stored: the
    flow's next write fails, the controller hands the caller to the dialplan's fallback,
    which needs no database, and the caller leaves a message. When `ivr cluster up`
    restarts PostgreSQL, the hang-up stamp completes the record and the message is
    attached; what was stored before stays. Lost: the answers the caller gave after the
    crash, up to the fallback (the one whose write failed), printed below."""
    caller = "+16175550431"
    call = cluster.dial(cluster.intake_plan(caller), 0)
    started = cluster.started(caller)
    before = wait_for(lambda: cluster.show(started["id"])["intake"], 90,
                      "the first answer to be stored", interval=0.3)
    from ivr.cluster.postgres import PostgresServer

    PostgresServer(cluster.folder / "postgres", port=cluster.base + 1).stop("immediate")
    report = call.wait()  # the fallback ends the call: apology, busy numbers, message
    assert report.ended_by == "far", report.explain()
    cluster.up()  # PostgreSQL again; the rest runs already
    record = cluster.finished(caller)
    detail = cluster.show(record["id"])
    assert record["fallback_reason"] or record["end_reason"].startswith("fallback"), record
    assert record["end_reason"] in ("fallback_recorded", "fallback_abandoned"), record
    if record["end_reason"] == "fallback_recorded":
        assert Path(record["fallback_recording"]).is_file()
    for field, entry in before.items():  # nothing stored before the crash is lost
        assert detail["intake"][field]["value"] == entry["value"], field
    given = {"callback": "1", "dob": DOB_KEYS, "name": NAME, "reason": REASON}
    lost = [f for f in given if f not in detail["intake"]]
    with capsys.disabled():
        print(f"\n  database drill: stored before the crash {sorted(before)}, after it "
              f"{sorted(detail['intake'])}; not stored (given after the crash or never "
              f"asked: the fallback took the caller) {lost}; end {record['end_reason']}")
    # And the next call is served from start to end again.
    after = cluster.dial(cluster.intake_plan("+16175550432"), 1)
    _complete(after.wait(), cluster.finished("+16175550432"))


def test_no_secret_in_any_log_or_output(cluster):
    """The database password and every node's AMI secret appear in no file of the
    cluster's folder (logs, rendered configuration, state) but their own, nor in what
    `ivr cluster status` prints."""
    secrets = [(cluster.folder / "postgres" / "password").read_text().strip()]
    own = {cluster.folder / "postgres" / "password"}
    for node in cluster.status()["nodes"]:
        folder = Path(node["asterisk"]["folder"])
        secrets.append((folder / "ami.secret").read_text().strip())
        own |= {folder / "ami.secret", folder / "etc" / "manager.conf"}
        for path in (folder / "log").rglob("*"):  # Asterisk's own logs
            if path.is_file():
                text = path.read_text(errors="replace")
                assert not any(s in text for s in secrets), path
    found = []
    for path in cluster.folder.rglob("*"):
        if path.is_file() and path not in own and not path.name.endswith((".wav", ".enc")):
            data = path.read_bytes()
            found += [str(path) for s in secrets if s.encode() in data]
    assert not found, found
    printed = cluster.ivr("cluster", "status").stdout + cluster.ivr(
        "cluster", "status", "--json").stdout
    assert not any(s in printed for s in secrets)
