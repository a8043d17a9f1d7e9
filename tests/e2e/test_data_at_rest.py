"""Patient data at rest, through the real Asterisk: a caller keys a callback number and a
date of birth and speaks a name and a reason; afterwards nothing in the database files
(with the -wal) or in any recording shows those values, recordings are sealed (not
RIFF), and every file of the data folder is 0600 in 0700 folders."""

from __future__ import annotations

import base64
import os
import re
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harness import wait_for
from support import cli as ivr_cli
from support.plans import DOB_KEYS, answer, choose, speak, voices

from ivr.caller.plan import CallPlan
from ivr.flows.audio import analyse
from ivr.records import recordings
from ivr.secure import crypto, keys

pytestmark = pytest.mark.pbx

SUNNY_DID = "+16175550100"
CALLER = "+16175550181"
CALLBACK = "+16175550182"


def steps(v: dict[str, str]) -> tuple:
    """Key another callback number over the caller-ID offer and confirm it; key the date
    of birth and confirm it; say the name and the reason; 4: a routine message."""
    return (*answer("6175550182#"), *answer("1"), *answer(DOB_KEYS), *answer("1"),
            *speak(v["name"]), *speak(v["reason"]), *choose("4"))


PATIENT_VALUES = ["1990-01-02", "19900102", "01021990", "01/02/1990",
                  "6175550182", "6175550181"]


def _cli(stack, *args: str) -> str:
    out = ivr_cli.run(args, stack.env)
    assert out.code == 0, out.stderr
    return out.stdout + out.stderr


def _printable_runs(data: bytes) -> str:
    """What `strings` finds: printable ASCII runs, and runs of UTF-16 (either order)."""
    runs = [m.decode("ascii") for m in re.findall(rb"[\x20-\x7e]{4,}", data)]
    for pattern in (rb"(?:[\x20-\x7e]\x00){4,}", rb"(?:\x00[\x20-\x7e]){4,}"):
        runs += [m.replace(b"\x00", b"").decode("ascii") for m in re.findall(pattern, data)]
    return "\n".join(runs)


def _strings(path: Path) -> str:
    """The real `strings` (8-bit, and 16-bit little and big endian) where installed, and
    our own scan of printable runs besides."""
    found = [_printable_runs(path.read_bytes())]
    tool = shutil.which("strings")
    if tool:
        for encoding in ("s", "l", "b"):
            found.append(subprocess.run([tool, "-a", "-n", "4", "-e", encoding, str(path)],
                                        capture_output=True, text=True, check=True).stdout)
    return "\n".join(found)


def _leaks(path: Path) -> list[str]:
    data = path.read_bytes()
    text = _strings(path)
    return [f"{path.name}: {value}" for value in PATIENT_VALUES
            if value in text or value.encode() in data
            or value.encode("utf-16-le") in data or value.encode("utf-16-be") in data]


def _key_strings(key_file: keys.KeyFile) -> list[str]:
    out = []
    for key_id in key_file.ring:
        raw = key_file.ring.material(key_id)
        out += [raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]
    return out


@pytest.fixture
def after_hours(live):
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    _cli(live, "override", "set", "--practice", "sunny-pediatrics", "--closed", "--until",
         until.isoformat(), "--reason", "e2e: data at rest")
    try:
        yield live
    finally:
        _cli(live, "override", "clear", "--practice", "sunny-pediatrics")


def test_patient_values_are_nowhere_in_the_data_folder_in_plaintext(after_hours, tmp_path):
    stack = after_hours
    plan = CallPlan(caller_id=CALLER, steps=steps(voices(stack)))
    started = datetime.now(UTC) - timedelta(seconds=5)
    report = stack.place(plan, SUNNY_DID, tmp_path / "call")
    assert report.ok, report.explain()

    def stored():
        rows = [c for c in stack.calls() if c["caller"] == CALLER
                and c["started_at"] >= started.isoformat()]
        return rows[0] if rows and rows[0]["reconciled_at"] else None

    call = stack.show(wait_for(stored, 60, "the call to be stored and reconciled")["id"])
    # Through the command line, everything reads back as the caller gave it ...
    intake = call["intake"]
    assert (intake["callback"]["value"], intake["callback"]["source"]) == (CALLBACK, "keyed")
    assert intake["dob"]["value"] == "1990-01-02" and intake["dob"]["confirmed"]
    assert call["disposition"] == "routine"
    kept = [Path(intake[f]["recording_path"]) for f in ("name", "reason")]
    assert [p.name for p in kept] == ["name.wav.enc", "reason.wav.enc"]
    assert all(analyse(recordings.read(p)).has_voice for p in kept)
    # ... and the call's recordings left the PBX's spool at once.
    spool = stack.pbx.spool_dir / "ivr-intake"
    assert not [p.name for p in spool.iterdir() if p.name.startswith(call["id"])]

    data = stack.settings.data_dir
    db_files = sorted(data.glob("ivr.sqlite3*"))
    # The controller is still running: its write-ahead log is there, and scanned too.
    assert {data / "ivr.sqlite3", data / "ivr.sqlite3-wal"} <= set(db_files)
    all_recordings = sorted(p for p in stack.settings.recordings_dir.rglob("*") if p.is_file())
    assert set(kept) <= set(all_recordings)
    leaks = [leak for path in db_files + all_recordings for leak in _leaks(path)]
    assert leaks == [], "patient values readable at rest:\n" + "\n".join(leaks)
    for path in all_recordings:
        head = path.read_bytes()[:4]
        assert head == crypto.MAGIC and head != b"RIFF", f"{path} is not sealed"

    offenders = []
    for folder, dirs, names in os.walk(data):
        for name in dirs:
            mode = stat.S_IMODE((Path(folder) / name).lstat().st_mode)
            if mode != 0o700:
                offenders.append(f"{Path(folder) / name}/ {mode:04o}")
        for name in names:
            path = Path(folder) / name
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode & 0o077 or not path.is_file():
                offenders.append(f"{path} {mode:04o}")
    if stat.S_IMODE(data.stat().st_mode) != 0o700:
        offenders.append(f"{data}/ {stat.S_IMODE(data.stat().st_mode):04o}")
    print("\n".join(offenders))
    assert offenders == [], "too open:\n" + "\n".join(offenders)

    # Neither the keys nor the patient's values reach the controller's log or the
    # command line's output.
    shown = stack.controller_log() + _cli(stack, "calls", "list", "--caller", CALLER) \
        + _cli(stack, "keys", "status")
    key_file = keys.read(stack.settings.key_file, data)
    assert [s for s in _key_strings(key_file) if s in shown] == []
    log = stack.controller_log()
    assert [v for v in PATIENT_VALUES if v in log] == []
