"""The local cluster end to end: `ivr cluster up` starts PostgreSQL, two real Asterisk
nodes with two controllers each and Kamailio in front; reacting callers dial Kamailio.

One cluster serves every test, in order: calls land on both nodes and in the one
database; PostgreSQL crashed mid-call (the call goes on, its answers kept in the
controller's journal, all in the record once it is back, `ivr cluster up` restarting
only what is gone). Then no secret is in any log. A node's Asterisk and a controller
killed are drilled under continuous calls in tests/cluster/test_cluster_load.py (`make
drill`). The test rules (tests/support/cluster.py) have short prompts, and a test that
needs only a finished call dials their quick practice (callback number, menu); the whole
intake is taken where a test checks it. Nodes on 127.0.0.5/.6, Kamailio on 127.0.0.4,
ports 12000-12999.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness import wait_for
from support.cluster import PRACTICE, QUICK, QUICK_PRACTICE, RealCluster, running_cluster

from ivr.caller.client import CallReport

pytestmark = [
    pytest.mark.pbx,
    pytest.mark.skipif(not Path("/usr/sbin/kamailio").exists() or
                       not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")),
                       reason="kamailio or postgresql is not installed (make test does)"),
]


@pytest.fixture(scope="module")
def cluster():
    with running_cluster("ivr-test-cluster-", "e2e cluster: after hours") as c:
        yield c


def _complete(report: CallReport, call: dict[str, Any], practice: str = PRACTICE) -> None:
    assert report.ok, report.explain()
    assert call["end_reason"] == "completed" and call["result"] == "done", call
    assert call["practice_id"] == practice and call["disposition"] == "routine"


def _quick(cluster: RealCluster, caller: str, slot: int):  # noqa: ANN202 (RunningCall)
    return cluster.dial(cluster.quick_plan(caller), slot, to=QUICK)


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


def test_the_database_stopped_mid_call(cluster, capsys):
    """PostgreSQL crashes (immediate stop) once the caller's first answer is stored. The
    call goes on: every answer given after the crash (date of birth, its confirmation,
    name, reason, the menu's choice) and the call's end are kept in the controller's
    write-ahead journal, and the caller is told the usual promise. When `ivr cluster up`
    restarts PostgreSQL the journal is written, once, and the hang-up stamp completes the
    record: nothing the caller gave is lost (the counts are printed)."""
    caller = "+16175550431"
    call = cluster.dial(cluster.intake_plan(caller), 0)
    started = cluster.started(caller)
    before = wait_for(lambda: cluster.show(started["id"])["intake"], 90,
                      "the first answer to be stored", interval=0.2)
    cluster.postgres.stop("immediate")
    report = call.wait()  # the whole call, the database down all along
    assert report.ok and report.ended_by == "far", report.explain()
    cluster.up()  # PostgreSQL again; the rest runs already
    record = cluster.finished(caller)
    detail = wait_for(lambda: (d := cluster.show(record["id"]))["result"] and d, 60,
                      "the journal to be written")
    _complete(report, detail)
    for field, entry in before.items():  # nothing stored before the crash is lost
        assert detail["intake"][field]["value"] == entry["value"], field
    given = ["callback", "dob", "name", "reason"]
    lost = [f for f in given if f not in detail["intake"]]
    intake = detail["intake"]
    assert intake["dob"]["value"] == "1990-01-02" and intake["dob"]["confirmed"], intake
    assert intake["name"]["recording_path"] and intake["reason"]["recording_path"]
    kinds = [e["kind"] for e in detail["timeline"]]
    doubled = sorted({k for k in kinds if kinds.count(k) > 1 and k.startswith("intake.")
                      and k.endswith((".captured", ".confirmed"))})
    with capsys.disabled():
        print(f"\n  database drill: stored before the crash {sorted(before)}; given "
              f"{given}; in the record after it {sorted(intake)}; lost {len(lost)} "
              f"{lost}; written twice {len(doubled)}; end {record['end_reason']}")
    assert not lost and not doubled, (lost, doubled)
    # And the next call is served from start to end again.
    after = _quick(cluster, "+16175550432", 1)
    _complete(after.wait(), cluster.finished("+16175550432"), QUICK_PRACTICE)


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
