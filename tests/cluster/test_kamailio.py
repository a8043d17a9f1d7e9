"""Kamailio in front of answering nodes: the rendered configuration is Kamailio's to
check; calls go round the nodes, fail over from a node that does not answer, come back
to it once it answers probes again, and avoid a drained node. The nodes here are SIPp
stand-ins (they answer OPTIONS and calls); tests/e2e has real Asterisk nodes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from harness import wait_for
from support.cluster import FakeNode, cluster_port_base, place_calls

from ivr.cluster.kamailio import KamailioError, KamailioProxy, Node

pytestmark = pytest.mark.skipif(shutil.which("kamailio") is None and
                                not Path("/usr/sbin/kamailio").exists(),
                                reason="kamailio is not installed (make test installs it)")
DID = "+16175550100"


@pytest.fixture
def proxy():
    base = cluster_port_base()
    folder = Path(tempfile.mkdtemp(prefix="ivr-test-kam-"))
    nodes = [Node("node1", "127.0.0.2", base + 1), Node("node2", "127.0.0.3", base + 2)]
    # A node that has not answered in fail_over_ms is passed over: 1.5 s was too short
    # for a stand-in starved beside two CPU hogs (a 408 from each node, a failed call in
    # runs h14 and h15); a node that is down fails at once, so a longer wait costs nothing.
    kam = KamailioProxy(folder, "127.0.0.1", base, nodes, probe_seconds=1, fail_over_ms=5000)
    try:
        yield kam
    finally:
        kam.stop()
        if not os.environ.get("IVR_KEEP_TEST_DIRS"):
            shutil.rmtree(folder, ignore_errors=True)


def test_the_rendered_configuration_is_accepted_by_kamailio(proxy):
    proxy.render()
    proxy.check()
    listing = (proxy.folder / "dispatcher.list").read_text().splitlines()
    assert listing == [f"1 sip:127.0.0.2:{proxy.nodes[0].port} 0 0 node=node1",
                       f"1 sip:127.0.0.3:{proxy.nodes[1].port} 0 0 node=node2"]
    assert oct(proxy.config_file.stat().st_mode & 0o777) == "0o600"


def test_a_bad_trunk_address_or_node_name_is_refused(proxy, tmp_path):
    with pytest.raises(ValueError):
        Node("node 1; evil", "127.0.0.2", 5060)
    with pytest.raises(ValueError):
        KamailioProxy(tmp_path, "127.0.0.1", 5060, proxy.nodes,
                      trunk_match=('1.2.3.4"; exit; #',)).render()
    with pytest.raises(KamailioError, match="no node 'node9'"):
        proxy.node("node9")


def test_calls_fail_over_come_back_and_avoid_a_drained_node(proxy):
    node1 = FakeNode("127.0.0.2", proxy.nodes[0].port, proxy.folder)
    node2 = FakeNode("127.0.0.3", proxy.nodes[1].port, proxy.folder).start()
    caller_port = proxy.sip_port + 10
    target = f"{proxy.sip_host}:{proxy.sip_port}"
    try:
        proxy.start()
        # node1 is down: every call lands on node2, none fails.
        done = place_calls(target, DID, 6, caller_port)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert node2.calls() == 6
        wait_for(lambda: proxy.states().get("node1", "").startswith("inactive"), 30,
                 "node1 marked inactive")
        # node1 comes back: the probes find it, and calls go round both again.
        node1.start()
        wait_for(lambda: proxy.states().get("node1", "").startswith("active"), 30,
                 "node1 active again after answering a probe")
        done = place_calls(target, DID, 6, caller_port)
        assert done.returncode == 0, done.stdout[-2000:]
        assert node1.calls() >= 2 and node2.calls() >= 8
        # node2 drained for maintenance: no new call goes there.
        before = node2.calls()
        proxy.drain("node2")
        assert proxy.states()["node2"].startswith("drained")
        done = place_calls(target, DID, 4, caller_port)
        assert done.returncode == 0, done.stdout[-2000:]
        assert node2.calls() == before
        proxy.undrain("node2")
        assert proxy.states()["node2"].startswith("active")
    finally:
        node1.stop()
        node2.stop()
