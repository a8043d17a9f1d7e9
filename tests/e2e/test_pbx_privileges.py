"""Least privilege for the PBX, against the real Asterisk on an instance of its own.

Asterisk runs as the PBX user with umask 077 and no capabilities; everything in the
instance folder is that user's, 0600/0700, except root's AMI secret; the secret is never
printed; and a caller's number and name (invalid UTF-8, a hostile From user part) reach
none of the files Asterisk writes, except the AstDB hang-up stamp's filtered number.
"""

from __future__ import annotations

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

from ivr import contract
from ivr.pbx.instance import SECRET_FILE, PbxInstance
from ivr.sipp import CallerSpec, speech_pcap

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


def _hostile_scenario(end_ms: int, audio: Path | None) -> bytes:
    """A caller with the name and From user part above, hanging up after end_ms."""
    from_header = (f'From: "{NAME_SLOT}" <sip:{HOSTILE_USER}@127.0.0.1:[local_port]>'
                   ";tag=[call_number]")
    xml = timed_caller_scenario(CallerSpec(caller_id=NUMBER,
                                           audio_pcap=str(audio) if audio else None),
                                [], end_ms, hangup=True, raw_headers=(from_header,))
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
    own.pbx.cli(f"database deltree {contract.DB_FALLBACK}")
    speech = speech_pcap("I need a call back about my daughter's fever. " * 6,
                         own.workdir / "speech.pcap", tail_silence_s=1)
    mark = own.recorder.mark()
    second = run_scenario_in(own, _hostile_scenario(32000, speech), EXAMPLE_DID,
                             own.workdir / "call2")
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
    run file. AstDB keeps the hang-up stamp's number, FILTERed to digits, by design; the
    name and the raw From user part are not there either."""
    pbx = own.pbx
    by_design = {pbx.host_dir / "db", pbx.stamps_dir}
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
    # The second call (nobody reconciled it) left its stamp, so the grep saw real data:
    # in AstDB, or as a file once stamps move there.
    uid2 = after_calls["uniqueids"][1]
    stamps = pbx.cli(f"database show {contract.DB_STAMP}")
    assert uid2 in stamps or any(uid2 in p.name for p in pbx.stamps_dir.iterdir()), stamps


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
