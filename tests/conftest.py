"""Shared fixtures: one PBX instance and controller per test session, clean between tests."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from argon2 import PasswordHasher, profiles
from harness import Stack, wait_for  # noqa: E402
from support.order import rank  # noqa: E402

from ivr import config
from ivr.accounts import passwords
from ivr.caller.__main__ import NICE_VARIABLE
from ivr.secure import keys

# `databases`: SQLite and a real PostgreSQL for the tests that touch the database.
pytest_plugins = ["support.databases"]


@pytest.fixture(scope="session", autouse=True)
def cheap_passwords():
    """Passwords hashed in the tests' own process use argon2's cheapest profile: the
    real one (~0.15 s of CPU each) was a fifth of the web tests' CPU. Processes the tests
    start (`ivr web`, `ivr users`) keep the real one; test_passwords checks it."""
    passwords.use_hasher(PasswordHasher.from_parameters(profiles.CHEAPEST))
    yield
    passwords.use_hasher(passwords.DEFAULT_HASHER)


#: The reacting callers' and phones' niceness as root (ivr/caller/__main__.py says why).
DEVICE_NICE = "-5"


@pytest.fixture(scope="session", autouse=True)
def outside_devices():
    """The suite's callers and phones are the devices of other machines: beside two CPU
    hogs a caller starved of its share heard a menu's end late and pressed after its
    wait. Asterisk, the controller and everything else keep the niceness they had."""
    if os.geteuid() != 0 or NICE_VARIABLE in os.environ:
        yield
        return
    os.environ[NICE_VARIABLE] = DEVICE_NICE
    try:
        yield
    finally:
        os.environ.pop(NICE_VARIABLE, None)


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first (support/order.py); make test turns xdist's own
    reordering off, which would sort by the number of tests alone."""
    counts = Counter(item.nodeid.split("::")[0] for item in items)

    def order(item: pytest.Item) -> tuple[int, int]:
        path = item.nodeid.split("::")[0]
        return rank(path, counts[path])

    items.sort(key=order)


_OUTCOME = pytest.StashKey[str]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001, ANN201 (pytest's hook)
    report = (yield).get_result()
    if report.failed:
        item.stash[_OUTCOME] = "failed"
    elif report.when == "call" and item.stash.get(_OUTCOME, "") != "failed":
        item.stash[_OUTCOME] = report.outcome


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):  # noqa: ANN001, ANN201 (pytest's hook)
    """With IVR_TEST_TIMELINE=FILE, one JSON line per test (worker, test, start, end,
    outcome, CPU seconds of the worker and of the processes it started and reaped):
    where a run's time and CPU went, worker by worker (the suite on a busy machine)."""
    timeline = os.environ.get("IVR_TEST_TIMELINE")
    start, cpu = time.time(), _cpu()
    yield
    used = [round(b - a, 2) for a, b in zip(cpu, _cpu(), strict=True)]
    if timeline:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(timeline, "a", encoding="utf-8") as out:
            out.write(json.dumps({"worker": worker, "test": item.nodeid,
                                  "start": round(start, 2), "end": round(time.time(), 2),
                                  "outcome": item.stash.get(_OUTCOME, "skipped"),
                                  "cpu": used}) + "\n")


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process and of its children that have ended."""
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system
