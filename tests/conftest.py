"""Shared fixtures: one PBX instance and controller per test session, clean between tests."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Stack, wait_for  # noqa: E402

from ivr import config
from ivr.secure import keys

# `databases`: SQLite and a real PostgreSQL for the tests that touch the database.
pytest_plugins = ["support.databases"]

#: The files that run longest (real calls through Asterisk, a cluster, a browser), longest
#: first as measured with --junitxml: xdist's loadfile hands out files in this order
#: (`make test` turns off its own reordering, by number of tests), so no worker is left
#: alone with one of them at the end. An order only: every file runs wherever it is.
SLOW_FIRST = (
    "tests/e2e/test_call_flow.py", "tests/e2e/test_oncall_faults.py",
    "tests/cluster/test_cluster_e2e.py", "tests/e2e/test_oncall_bridge.py",
    "tests/web/test_browser_callback.py", "tests/e2e/test_transcripts.py",
    "tests/e2e/test_foundation_calls.py", "tests/e2e/test_trust_boundary.py",
    "tests/e2e/test_clinician_line.py", "tests/e2e/test_carrier_edge.py",
    "tests/e2e/test_data_at_rest.py", "tests/e2e/test_night_report.py",
    "tests/web/test_browser_call.py", "tests/e2e/test_demo_call.py",
    "tests/e2e/test_carrier_chain.py", "tests/e2e/test_pbx_privileges.py",
    "tests/audit/test_audit_cli.py", "tests/web/test_pages.py", "tests/web/test_access.py",
    "tests/crypto/test_keys_cli.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow files first, then the other files with real calls, then the rest; each
    file's own order is kept (a stable sort)."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}

    def key(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(rank) + (0 if item.get_closest_marker("pbx") else 1))

    items.sort(key=key)


@pytest.fixture(scope="session", autouse=True)
def key_file():
    """One keyring per test process, outside every data folder and never the user's own:
    the tests' processes (controller, command line) find it through IVR_KEY_FILE."""
    folder = Path(tempfile.mkdtemp(prefix="ivr-test-keys-"))
    path = folder / "keys.json"
    settings = config.Settings(key_file=path)
    keys.init(settings)
    saved = {name: os.environ.get(name) for name in ("IVR_KEY_FILE", keys.ENV_KEYS)}
    os.environ.pop(keys.ENV_KEYS, None)
    os.environ["IVR_KEY_FILE"] = str(path)
    keys.use(keys.KeySource(settings))
    try:
        yield path
    finally:
        keys.use(None)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def stack():
    """A running Asterisk instance (no controller yet) on free ports."""
    workdir = Path(tempfile.mkdtemp(prefix="ivr-test-"))
    s = Stack(name=f"t{os.getpid()}", workdir=workdir)
    s.start_pbx()
    try:
        yield s
    finally:
        s.remove()


@pytest.fixture
def live(stack):
    """The stack with a running controller; after the test: no channels left."""
    if stack.controller is None or stack.controller.poll() is not None:
        stack.start_controller()
    yield stack
    try:
        wait_for(lambda: stack.channels() == 0, 45, "no channels left in Asterisk")
    finally:
        if stack.channels():
            stack.hangup_all()
