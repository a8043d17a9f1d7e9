"""Rules in a running controller: reloads that refuse broken rules, the watcher, the status."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys

import pytest
from runtime_helpers import INSTANCE, NOW, SUNNY, rewrite, until

from ivr import config
from ivr.cli import main as cli
from ivr.rules.runtime import (
    ReloadError,
    RulesRuntime,
    controller_pid,
    pid_path,
    read_status,
    remove_pid_file,
    request_path,
    status_path,
    write_pid_file,
)

BROKEN = ("timezone: America/New_York", "timezone: America/Nowhere")
RENAMED = ("name: Sunny Pediatrics ", "name: Sunny Pediatrics Group ")


@pytest.fixture
def runtime(rules_dir, tmp_path):
    return RulesRuntime(rules_dir, instance=INSTANCE, status_file=tmp_path / "status.json",
                        request_file=tmp_path / "reload.request", clock=lambda: NOW)


async def test_startup_load_and_status_file(runtime, rules_dir, tmp_path):
    assert runtime.current is None
    assert await runtime.load()
    rules = runtime.current
    assert rules is not None and set(rules.practices) == {SUNNY, "mesa-family"}
    doc = json.loads((tmp_path / "status.json").read_text())
    assert doc == runtime.status.to_json()
    assert doc["instance"] == INSTANCE and doc["pid"] == os.getpid()
    assert doc["rules_path"] == str(rules_dir)
    assert doc["digest"] == rules.digest
    assert doc["practices"] == ["mesa-family", SUNNY]
    assert doc["loaded_at"] == doc["last_attempt_at"] == NOW.isoformat()
    assert doc["loaded_source"] == doc["last_attempt_source"] == "startup"
    assert doc["last_attempt_ok"] is True and doc["attempts"] == 1
    assert doc["last_error"] is None and doc["errors"] == [] and doc["error_count"] == 0


async def test_broken_reload_keeps_the_rules_in_force(runtime, rules_dir, tmp_path, caplog):
    await runtime.load()
    before = runtime.current
    rewrite(rules_dir / f"{SUNNY}.yaml", *BROKEN)
    with caplog.at_level(logging.ERROR, logger="ivr.rules.runtime"):
        assert not await runtime.reload("command")
    assert runtime.current is before
    doc = read_status(tmp_path / "status.json")
    assert doc is not None
    assert doc["digest"] == before.digest and doc["loaded_source"] == "startup"
    assert doc["last_attempt_source"] == "command" and doc["last_attempt_ok"] is False
    assert doc["attempts"] == 2 and doc["error_count"] == 1
    assert "practice.timezone" in doc["last_error"] and doc["errors"] == [doc["last_error"]]
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "rules refused (command): 1 errors" in logged and before.digest in logged
    assert "practice.timezone" in logged

    rewrite(rules_dir / f"{SUNNY}.yaml", BROKEN[1], BROKEN[0])  # fixed: loads again
    assert await runtime.reload("sighup")
    doc = read_status(tmp_path / "status.json")
    assert doc["last_attempt_ok"] is True and doc["last_error"] is None
    assert doc["loaded_source"] == "sighup"


async def test_first_load_refused_leaves_no_rules(rules_dir, tmp_path):
    rewrite(rules_dir / f"{SUNNY}.yaml", *BROKEN)
    rt = RulesRuntime(rules_dir, status_file=tmp_path / "s.json", clock=lambda: NOW)
    assert not await rt.load()
    assert rt.current is None
    assert read_status(tmp_path / "s.json")["digest"] is None


async def test_loader_crash_is_a_refusal(runtime, monkeypatch):
    await runtime.load()
    before = runtime.current

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("ivr.rules.runtime.load_rules", explode)
    assert not await runtime.reload("sighup")
    assert runtime.current is before
    assert "the rules loader failed" in runtime.status.last_error


async def test_reference_taken_before_a_reload_is_unaffected(runtime, rules_dir):
    await runtime.load()
    held = runtime.current  # what a call in progress holds
    practice = held.practices[SUNNY]
    rewrite(rules_dir / f"{SUNNY}.yaml", *RENAMED)
    assert await runtime.reload("command")
    new = runtime.current
    assert new is not held and new.digest != held.digest
    assert new.practices[SUNNY].name == "Sunny Pediatrics Group"
    assert held.practices[SUNNY] is practice and practice.name == "Sunny Pediatrics"
    with pytest.raises(TypeError):
        held.practices["x"] = practice  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        held.digest = "changed"  # type: ignore[misc]


async def test_listeners_run_after_good_loads_only(runtime, rules_dir):
    seen = []

    async def record(rules):
        seen.append(rules.digest)

    async def broken_listener(rules):
        raise RuntimeError("listener bug")

    runtime.on_loaded(broken_listener)
    runtime.on_loaded(record)
    assert await runtime.load()  # the first listener's failure neither undoes nor stops it
    rewrite(rules_dir / f"{SUNNY}.yaml", *BROKEN)
    assert not await runtime.reload("file-change")
    assert seen == [runtime.current.digest]


async def test_unknown_source_is_a_bug(runtime):
    with pytest.raises(ValueError, match="unknown reload source"):
        await runtime.reload("cron")


async def test_watch_reloads_a_changed_file(runtime, rules_dir):
    await runtime.load()
    held = runtime.current
    task = asyncio.create_task(runtime.watch(interval=0.05))
    try:
        await asyncio.sleep(0.2)
        assert runtime.status.attempts == 1  # nothing changed: no reload
        rewrite(rules_dir / f"{SUNNY}.yaml", *RENAMED)
        await until(lambda: runtime.current is not held, what="the watcher's reload")
        assert runtime.status.loaded_source == "file-change"
        assert runtime.current.practices[SUNNY].name == "Sunny Pediatrics Group"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_watch_tries_broken_files_once_per_change(runtime, rules_dir):
    await runtime.load()
    held = runtime.current
    task = asyncio.create_task(runtime.watch(interval=0.03))
    try:
        rewrite(rules_dir / f"{SUNNY}.yaml", *BROKEN)
        await until(lambda: runtime.status.last_attempt_ok is False, what="a refused reload")
        attempts = runtime.status.attempts
        await asyncio.sleep(0.3)
        assert runtime.status.attempts == attempts and runtime.current is held
        (rules_dir / "mesa-family-oncall.ics").write_bytes(
            (rules_dir / "mesa-family-oncall.ics").read_bytes() + b"\r\n")  # calendars count
        await until(lambda: runtime.status.attempts > attempts, what="a calendar change")
        rewrite(rules_dir / f"{SUNNY}.yaml", BROKEN[1], BROKEN[0])
        await until(lambda: runtime.status.last_attempt_ok is True, what="the fixed rules")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_sighup_is_tagged_command_when_the_cli_asked(runtime, tmp_path):
    await runtime.load()
    assert await runtime.reload_on_signal()
    assert runtime.status.last_attempt_source == "sighup"
    (tmp_path / "reload.request").write_text("abc123\n")
    assert await runtime.reload_on_signal()
    assert runtime.status.last_attempt_source == "command"
    assert runtime.status.last_request_id == "abc123"
    assert not (tmp_path / "reload.request").exists()


def test_pid_file_is_removed_only_by_its_owner(tmp_path):
    path = tmp_path / "controller.pid"
    write_pid_file(path)
    assert controller_pid(path) == os.getpid()
    path.write_text("999999999\n")  # another controller's file
    remove_pid_file(path)
    assert path.exists()
    write_pid_file(path)
    remove_pid_file(path)
    assert not path.exists()


def test_stale_pid_is_never_signalled(tmp_path):
    path = tmp_path / "controller.pid"
    with pytest.raises(ReloadError, match="no controller pid file"):
        controller_pid(path)
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    path.write_text(done.stdout)
    with pytest.raises(ReloadError, match="not running"):
        controller_pid(path)
    path.write_text("garbage\n")
    with pytest.raises(ReloadError, match="expected a process id"):
        controller_pid(path)
    # A live process started after the pid file was written is someone else's.
    path.write_text("1\n")
    os.utime(path, (0, 0))
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        path.write_text(f"{later.pid}\n")
        os.utime(path, (1, 1))
        with pytest.raises(ReloadError, match="started after"):
            controller_pid(path)
    finally:
        later.kill()
        later.wait()


# --- the CLI against an in-process "controller" ------------------------------------------

@pytest.fixture
async def controller(cli_env):
    """This process plays the controller: the runtime, the pid file and a SIGHUP handler."""
    settings = config.from_env()
    rt = RulesRuntime.for_settings(settings)
    # Deadlines have their own tests (test_rules_deadline.py); here a child loader that
    # a busy machine starves for 20 s must not turn a reload into a refusal.
    rt.deadline = 120.0
    await rt.load()
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[bool]] = set()

    def on_sighup():
        task = asyncio.create_task(rt.reload_on_signal())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    write_pid_file(pid_path(settings))
    try:
        yield rt
    finally:
        remove_pid_file(pid_path(settings))
        loop.remove_signal_handler(signal.SIGHUP)
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_cli_reload_and_status(controller, rules_dir, capsys):
    held = controller.current
    rewrite(rules_dir / f"{SUNNY}.yaml", *RENAMED)
    # A generous answer time: the controller's load runs in a child, slow on a busy machine.
    assert await asyncio.to_thread(cli.main, ["rules", "reload", "--timeout", "120"]) == 0
    out = capsys.readouterr().out
    assert controller.current is not held
    assert f"digest {controller.current.digest}" in out and "(command)" in out
    assert not request_path(config.from_env()).exists()

    rewrite(rules_dir / f"{SUNNY}.yaml", *BROKEN)
    assert await asyncio.to_thread(cli.main, ["rules", "reload", "--json",
                                              "--timeout", "120"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["last_attempt_ok"] is False and doc["last_attempt_source"] == "command"
    assert doc["digest"] == controller.current.digest  # still the renamed rules
    assert "practice.timezone" in doc["last_error"]

    assert cli.main(["rules", "status"]) == 0
    out = capsys.readouterr().out
    assert "REFUSED" in out and "practice.timezone" in out and "mesa-family" in out
    assert "controller not running" not in out
    assert cli.main(["rules", "status", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc.pop("controller_running") is True
    assert doc == read_status(status_path(config.from_env()))


async def test_cli_status_of_a_stopped_controller(controller, capsys):
    remove_pid_file(pid_path(config.from_env()))  # as Controller.stop does
    assert cli.main(["rules", "status"]) == 0
    out = capsys.readouterr().out
    assert f"controller not running; as of its last run (pid {os.getpid()})" in out
    assert "last attempt" in out and "(startup): loaded" in out


def test_cli_reload_without_a_controller(cli_env, capsys):
    assert cli.main(["rules", "reload"]) == 3
    assert "is the controller running" in capsys.readouterr().err
    assert cli.main(["rules", "status"]) == 3
    assert "no rules status" in capsys.readouterr().err
