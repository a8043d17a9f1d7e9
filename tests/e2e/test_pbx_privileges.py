"""Least privilege for the PBX, against the real Asterisk on an instance of its own.

Asterisk runs as the PBX user with umask 077 and no capabilities; everything in the
instance folder is that user's, 0600/0700, except root's AMI secret; the secret is never
printed; and a caller's number and name (invalid UTF-8, a hostile From user part) reach
none of the files Asterisk writes, except the AstDB hang-up stamp's filtered number.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import (
    EXAMPLE_DID,
    REPO,
    Stack,
    run_scenario_in,
    timed_caller_scenario,
    wait_for,
)
from support.sipp import CallerSpec, PhoneSpec, speech_pcap

from ivr.ami import AmiClient
from ivr.pbx.instance import AMI_USER, SECRET_FILE, PbxInstance

pytestmark = pytest.mark.pbx

NUMBER = "+16175550137"
NUMBER_DIGITS = b"6175550137"
NAME_WORD = b"Quimbyzx"
# Latin-1 bytes, a lone continuation byte and a truncated sequence: not UTF-8.
RAW_NAME = b"Zo\xeb " + NAME_WORD + b" \xff\xfe\xc3("
# Every character is legal in a SIP URI user part, so the PBX takes the call.
HOSTILE_USER = NUMBER + "'&Set(X=1)/Dial(PJSIP/evil),$"
HOSTILE_MARK = b"Dial(PJSIP/evil)"
NAME_SLOT = "@@CALLER-NAME@@"


def _hostile_scenario(end_ms: int, audio: Path | None, hangup: bool = True) -> bytes:
    """A caller with the name and From user part above, hanging up after end_ms (or, not
    `hangup`, waiting up to end_ms for the PBX to end the call)."""
    from_header = (f'From: "{NAME_SLOT}" <sip:{HOSTILE_USER}@127.0.0.1:[local_port]>'
                   ";tag=[call_number]")
    xml = timed_caller_scenario(CallerSpec(caller_id=NUMBER,
                                           audio_pcap=str(audio) if audio else None),
                                [], end_ms, hangup=hangup, raw_headers=(from_header,))
    assert NAME_SLOT in xml
    return xml.encode().replace(NAME_SLOT.encode(), RAW_NAME)


@pytest.fixture(scope="module")
def own() -> Iterator[Stack]:
    """A PBX instance of this module's own, on ports apart from the session stack's, so
    what is in its folder comes from this module's calls only."""
    workdir = Path(tempfile.mkdtemp(prefix="ivr-priv-test-"))
    s = Stack(name=f"priv{os.getpid()}", workdir=workdir)
    p = s.ports
    s.settings = s.settings.with_overrides(
        sip_port=p.next(), ami_port=p.next(), agi_port=p.next(), web_port=p.next(),
        gateway_port=p.next())
    s.pbx = PbxInstance(s.settings, s.pbx.root)
    s.start_pbx()
    try:
        yield s
    finally:
        s.stop()
        if os.environ.get("IVR_KEEP_TEST_DIRS") != "1":
            shutil.rmtree(s.pbx.host_dir, ignore_errors=True)
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def after_calls(own: Stack) -> dict[str, Any]:
    """Two hostile calls: one the controller answers (the caller hangs up in the
    greeting), one with the controller stopped that ends in the fallback recording."""
    own.start_controller()
    mark = own.recorder.mark()
    first = run_scenario_in(own, _hostile_scenario(4000, None), EXAMPLE_DID,
                            own.workdir / "call1")
    assert first.returncode == 0, first.stderr
    uid1 = wait_for(lambda: own.recorder.last_inbound_uniqueid(mark), 20, "the first call")
    wait_for(lambda: (c := own.call_by_uniqueid(uid1)) and c["ended_at"] and c["reconciled_at"],
             40, "the first call to be recorded", interval=0.5)
    own.stop_controller()
    # No fallback numbers: the fallback goes straight to recording the caller's message.
    for path in own.pbx.fallback_dir.iterdir():
        path.unlink()
    speech = speech_pcap("I need a call back about my daughter's fever. " * 6,
                         own.workdir / "speech.pcap", tail_silence_s=40)
    mark = own.recorder.mark()
    # The PBX ends this call (the quiet after the speech ends the recording: 40 s of it),
    # not a fixed length: a loaded PBX may reach Record() late.
    second = run_scenario_in(own, _hostile_scenario(120000, speech, hangup=False),
                             EXAMPLE_DID, own.workdir / "call2")
    assert second.returncode == 0, second.stderr
    uid2 = wait_for(lambda: own.recorder.last_inbound_uniqueid(mark), 20, "the second call")
    assert "IvrFallbackRecord" in own.recorder.path(uid2)
    spooled = own.pbx.fallback_recordings_dir / f"{uid2}.wav"
    wait_for(spooled.exists, 20, "the fallback recording in the spool")
    wait_for(lambda: own.channels() == 0, 30, "no channels left")
    return {"uniqueids": (uid1, uid2), "recording": spooled}


# --- the PBX user ------------------------------------------------------------------------

def _proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def test_asterisk_runs_as_the_pbx_user_with_no_capabilities(own):
    pbx = own.pbx
    user = pbx.pbx_user
    assert user is not None and user.uid != 0 and user.gid != 0
    if pbx.root.chrooted:
        assert user.name == "ivrpbx"
        passwd = (pbx.root.path / "etc/passwd").read_text()
        assert f"ivrpbx:x:{user.uid}:{user.gid}:" in passwd
    status = _proc_status(pbx.pid() or 0)
    assert status["Uid"].split() == [str(user.uid)] * 4
    assert status["Gid"].split() == [str(user.gid)] * 4
    assert status["Groups"].split() in ([], [str(user.gid)])
    # Started as the user (not root dropping to it), Asterisk keeps no capability at all;
    # a root start would keep CAP_NET_ADMIN (main/asterisk.c, cap_net_admin=eip).
    assert {k: status[k] for k in ("CapPrm", "CapEff", "CapInh", "CapAmb")} == dict.fromkeys(
        ("CapPrm", "CapEff", "CapInh", "CapAmb"), "0000000000000000")
    assert status["Umask"] == "0077"
    # The root's CLI still reaches the 0600 control socket.
    assert "System uptime" in pbx.cli("core show uptime")


def test_pbx_user_creation_is_idempotent(own):
    root = own.pbx.root
    assert root.ensure_user() == root.ensure_user() == own.pbx.pbx_user


def test_give_to_pbx_hands_over_without_following_links(own):
    pbx = own.pbx
    folder = pbx.host_dir / "sounds" / "priv-test"
    folder.mkdir()
    (folder / "copy.wav").write_bytes(b"RIFF")
    outside = own.workdir / "outside.txt"
    outside.write_text("root's")
    outside.chmod(0o644)
    (folder / "link.wav").symlink_to(outside)
    try:
        pbx.give_to_pbx(folder)
        for path, mode in ((folder, 0o700), (folder / "copy.wav", 0o600)):
            st = path.stat()
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
                pbx.pbx_uid, pbx.pbx_gid, mode), path
        st = outside.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644)
        with pytest.raises(ValueError):
            pbx.give_to_pbx(own.workdir)
        with pytest.raises(ValueError):
            pbx.give_to_pbx(pbx.host_dir / SECRET_FILE)
    finally:
        shutil.rmtree(folder)


# --- the instance folder -----------------------------------------------------------------

def _offenders(pbx: PbxInstance) -> list[str]:
    """Every entry under the instance folder that is not the PBX user's 0600/0700."""
    found = []
    for top, dirs, files in os.walk(pbx.host_dir):
        for name in [*dirs, *files]:
            path = Path(top) / name
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if path == pbx.host_dir / SECRET_FILE:
                want = (0, 0, 0o600)
            elif stat.S_ISDIR(st.st_mode):
                want = (pbx.pbx_uid, pbx.pbx_gid, 0o700)
            elif stat.S_ISREG(st.st_mode) or stat.S_ISSOCK(st.st_mode):
                want = (pbx.pbx_uid, pbx.pbx_gid, 0o600)
            else:
                found.append(f"{path}: unexpected file type {stat.filemode(st.st_mode)}")
                continue
            if (st.st_uid, st.st_gid, mode) != want:
                found.append(f"{path.relative_to(pbx.host_dir)}: {st.st_uid}:{st.st_gid} "
                             f"{mode:04o}, want {want[0]}:{want[1]} {want[2]:04o}")
    return found


def test_instance_folder_is_the_pbx_users_alone(own, after_calls):
    pbx = own.pbx
    st = pbx.host_dir.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (pbx.pbx_uid, 0o700)
    # What Asterisk made itself is there to be checked, not only what render() made.
    made_by_asterisk = [pbx.host_dir / "db" / "astdb.sqlite3", pbx.log_file,
                        pbx.host_dir / "run" / "asterisk.ctl", pbx.pid_file,
                        after_calls["recording"]]
    assert [p for p in made_by_asterisk if not p.exists()] == []
    # Prompts the controller made for these calls.
    assert list((pbx.host_dir / "sounds" / "ivr").rglob("*.wav"))
    offenders = _offenders(pbx)
    print("\n".join(offenders) or "no offenders")
    assert offenders == []


# --- the secret --------------------------------------------------------------------------

def test_secret_is_private_and_never_printed(own, after_calls):
    pbx = own.pbx
    secret = pbx.ami_secret
    manager = pbx.host_dir / "etc" / "manager.conf"
    st = manager.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (pbx.pbx_uid, 0o600)
    assert secret in manager.read_text()
    st = (pbx.host_dir / SECRET_FILE).stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    printed = []
    for args in (["pbx", "status"], ["pbx", "status", "--json"],
                 ["pbx", "cli", "manager show users"], ["pbx", "cli", "manager show user ivr"]):
        out = subprocess.run([sys.executable, "-m", "ivr.cli", *args], env=own.env,
                             capture_output=True, text=True, cwd=REPO, timeout=60)
        assert out.returncode == 0, out.stderr
        printed.append(out.stdout + out.stderr)
    assert json.loads(printed[1])["running"] is True
    assert not [text for text in printed if secret in text]
    logs = [own.workdir / "controller.log", *own.settings.log_dir.rglob("*"),
            *(pbx.host_dir / "log").rglob("*")]
    assert [p for p in logs if p.is_file() and secret.encode() in p.read_bytes()] == []


# --- caller data in what Asterisk writes -------------------------------------------------

def test_no_caller_data_in_what_asterisk_writes(own, after_calls):
    """The name (invalid UTF-8) and number of both hostile calls are in no log, spool or
    run file. The hang-up stamp keeps the caller's number in its strict form until the
    controller applies it, by design; the name and the raw From user part are not there
    either."""
    pbx = own.pbx
    by_design = {pbx.host_dir / "db", pbx.stamp_dir}
    not_asterisks = {pbx.host_dir / "etc", pbx.host_dir / "sounds", pbx.fallback_dir}
    hits = []
    checked = 0
    for path in sorted(pbx.host_dir.rglob("*")):
        if not path.is_file() or path.is_symlink() or path.name == SECRET_FILE:
            continue
        if any(folder in path.parents for folder in not_asterisks):
            continue
        data = path.read_bytes()
        checked += 1
        words = [NAME_WORD, RAW_NAME, HOSTILE_MARK, HOSTILE_USER.encode()]
        if not any(folder in path.parents for folder in by_design):
            words.append(NUMBER_DIGITS)
        hits += [f"{path.relative_to(pbx.host_dir)}: {w!r}" for w in words if w in data]
    assert checked >= 3  # messages, startup.log, astdb at least
    print("\n".join(hits) or "no caller data")
    assert hits == []
    # The second call (nobody reconciled it) left its stamp, so the grep saw real data.
    uid2 = after_calls["uniqueids"][1]
    assert any(uid2 in p.name for p in pbx.stamp_dir.iterdir())


def test_asterisk_logs_keep_what_carries_no_caller_data(own, after_calls):
    """Start-up notices and errors reach the messages file; warnings (where res_pjsip puts
    the caller's name and number) and verbose dialplan steps do not, and no CDR, CEL,
    queue or security log exists."""
    pbx = own.pbx
    text = pbx.log_file.read_text(errors="replace")
    assert "NOTICE[" in text and "loader.c" in text
    assert "WARNING[" not in text and "VERBOSE[" not in text and "Executing [" not in text
    logs = sorted(p.name for p in (pbx.host_dir / "log").iterdir())
    assert logs == ["messages", "startup.log"], logs
    files = [line.split() for line in pbx.cli("logger show channels").splitlines()
             if " File " in line]
    assert [f[-2:] for f in files] == [["NOTICE", "ERROR"]], files
    assert "Logging:                    Disabled" in pbx.cli("cdr show status")
    assert "CEL Logging: Disabled" in pbx.cli("cel show status")


# --- AMI: the controller's user gets no shell ----------------------------------------------

def _ami_actions(stack: Stack, actions: list[dict[str, str]],
                 responses: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Each action's (first) response, through the controller's own AMI user; then, for
    each ActionID in `responses`, its OriginateResponse event (an Async Originate's)."""
    async def run() -> list[dict[str, Any]]:
        client = AmiClient(stack.settings.ami_host, stack.settings.ami_port, AMI_USER,
                           stack.pbx.ami_secret)
        seen: set[str] = set()
        done = asyncio.Event()

        async def on_response(event: Any) -> None:
            if event:
                seen.add(str(event.get("ActionID", "")))
            if seen >= set(responses):
                done.set()
        client.subscribe("OriginateResponse", on_response)
        await client.connect(timeout=10)
        try:
            out = []
            for fields in actions:
                response = await client.action(fields, check=False, timeout=60)
                listed = response if isinstance(response, list) else [response]
                out.append({k: str(v) for k, v in dict(listed[0]).items()})
                # panoramisk may hand an Async Originate's OriginateResponse back as
                # part of the action's own answer instead of as an event.
                for message in listed:
                    if message.get("Event") == "OriginateResponse":
                        await on_response(message)
            if responses:
                await asyncio.wait_for(done.wait(), 120)
            return out
        finally:
            await client.close()

    return asyncio.run(run())


def test_ami_refuses_module_load_command_and_shell_originates(own, tmp_path):
    """write = originate,call,reporting: no `system`, no `command` (main/manager.c)."""
    marks = [tmp_path / f"pwned-{i}" for i in range(5)]
    # Any channel will do: the checks refuse before a channel exists.
    local = "Local/s@ivr-gateway-in"
    refused = _ami_actions(own, [
        {"Action": "ModuleLoad", "Module": "app_system.so", "LoadType": "load"},
        {"Action": "Command", "Command": "core show uptime"},
        {"Action": "Originate", "Channel": local, "Application": "System",
         "Data": f"touch {marks[0]}"},
        {"Action": "Originate", "Channel": local, "Application": "Exec",
         "Data": f"System(touch {marks[1]})"},
        {"Action": "Originate", "Channel": local, "Application": "NoOp",
         "Data": f"${{SHELL(touch {marks[2]})}}"},
        {"Action": "Originate", "Channel": local, "Application": "Set",
         "Data": f"X=${{EVAL(${{SHELL(touch {marks[3]})}})}}"},
        {"Action": "Getvar", "Variable": f"SHELL(touch {marks[4]})"},
        {"Action": "DBPut", "Family": "ivrtest", "Key": "k", "Val": "v"},
    ])
    print(json.dumps(refused, indent=1))
    assert [r["Response"] for r in refused] == ["Error"] * len(refused)
    messages = [r.get("Message", "") for r in refused]
    assert messages[0] == messages[1] == messages[-1] == "Permission denied"
    assert all("Originate Access Forbidden" in m for m in messages[2:6])
    assert "GetVar Access Forbidden" in messages[6]
    # Refused with an Error: nothing was queued that could still run later.
    assert [m for m in marks if m.exists()] == []
    assert "0 modules loaded" in own.pbx.cli("module show like app_system")
    perms = own.pbx.cli(f"manager show user {AMI_USER}")
    write = next(line for line in perms.splitlines() if "write perm" in line)
    read = next(line for line in perms.splitlines() if "read perm" in line)
    assert write.split(":", 1)[1].strip().split(",") == ["call", "reporting", "originate"]
    assert read.split(":", 1)[1].strip().split(",") == ["call", "user"]


def test_ami_ordinary_originate_and_the_controllers_actions_still_work(own):
    """What the controller does: Originate to the clinician gateway (a phone answers),
    Getvar/Setvar, CoreShowChannels, Hangup, Ping."""
    phone = own.phone(PhoneSpec(answer=True, key=None, wait_bye_ms=20000))
    try:
        results = _ami_actions(own, [
            {"Action": "Ping"},
            {"Action": "Originate", "Channel": "PJSIP/+16175550123@clinician-gateway",
             "Application": "Wait", "Data": "2", "Timeout": "15000",
             "Variable": "IVR_LEG=0123abcd", "Async": "false"},
            {"Action": "CoreShowChannels"},
            {"Action": "Setvar", "Variable": "IVR_PRIV_TEST", "Value": "1"},
            {"Action": "Getvar", "Variable": "IVR_PRIV_TEST"},
            {"Action": "Hangup", "Channel": "PJSIP/nobody-00000000"},
        ])
        print(json.dumps(results, indent=1))
        assert [r["Response"] for r in results[:5]] == ["Success"] * 5
        assert results[4].get("Value") == "1"
        # Hangup is allowed (call); that channel just does not exist.
        assert results[5]["Response"] == "Error" and "No such channel" in results[5]["Message"]
        phone.communicate(timeout=30)
    finally:
        if phone.poll() is None:
            phone.kill()
        phone.communicate(timeout=10)


def test_dangerous_functions_through_async_originate_stay_the_pbx_users(own, tmp_path):
    """Asterisk blocks write-escalating functions (FILE, DB) in the AMI session's thread,
    but an Async Originate sets its Variable headers in a thread of its own, where they
    run (seen on 22.10). Whatever such a write reaches is then only what the PBX user may
    write: not the root's /etc, not a file of root's."""
    pbx = own.pbx
    loaded = "0 modules loaded" not in pbx.cli("module show like func_env")
    if not loaded:
        pbx.cli("module load func_env.so")
    inside = pbx.stamp_dir / "priv-test-async"
    outside_inner = "/etc/ivr-priv-test"
    try:
        # Each OriginateResponse comes once its channel was made, its variables set.
        _ami_actions(own, [
            {"Action": "Originate", "Channel": "Local/s@ivr-gateway-in",
             "Application": "Wait", "Data": "1", "Async": "true",
             "ActionID": f"priv-async-{n}", "Variable": f"FILE({target})=x"}
            for n, target in enumerate((pbx.inner_path(inside), outside_inner))],
            responses=("priv-async-0", "priv-async-1"))
        assert not pbx.root.host_path(outside_inner).exists()
        if inside.exists():
            st = inside.stat()
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (pbx.pbx_uid, 0o600)
    finally:
        inside.unlink(missing_ok=True)
        if not loaded:
            pbx.cli("module unload func_env.so")
