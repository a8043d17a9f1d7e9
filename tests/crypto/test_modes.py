"""0600 files in 0700 folders, whatever the umask of the moment: database (and its WAL),
logs, atomic writes; and the tightening of what an older version left 0644/0755."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from ivr import logs
from ivr.db.engine import Database
from ivr.secure import files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """The most permissive usual umask, so only explicit modes can pass these tests."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_the_database_and_its_wal_are_0600_in_a_0700_folder(tmp_path, open_umask):
    folder = tmp_path / "data" / "deeper"
    db = Database(f"sqlite+aiosqlite:///{folder / 'ivr.sqlite3'}")
    try:
        await db.create()
        async with db.engine.connect():
            made = sorted(folder.iterdir())
            assert [p.name for p in made] == ["ivr.sqlite3", "ivr.sqlite3-shm", "ivr.sqlite3-wal"]
            assert [_mode(p) for p in made] == [0o600] * 3
    finally:
        await db.close()
    assert _mode(folder) == 0o700 and _mode(folder.parent) == 0o700


def test_the_log_file_is_0600(tmp_path, open_umask):
    log_file = tmp_path / "data" / "log" / "controller.log"
    root, ours = logging.getLogger(), logging.getLogger("ivr")
    saved = (list(root.handlers), root.level, ours.level)
    try:
        logs.setup("INFO", log_file)
        logging.getLogger("ivr.test").info("hello")
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        ours.setLevel(saved[2])
    assert _mode(log_file) == 0o600 and _mode(log_file.parent) == 0o700
    assert "hello" in log_file.read_text()


def test_private_writes_and_folders(tmp_path, open_umask):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    target = files.write_private(shared / "new" / "doc.json", b"{}")
    assert _mode(target) == 0o600 and _mode(target.parent) == 0o700
    assert _mode(shared) == 0o755  # an existing folder (a user's own) is left alone
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temp left
    files.write_private(target, b"[1]")
    assert target.read_bytes() == b"[1]" and _mode(target) == 0o600


def test_tighten_fixes_what_an_older_version_left_open(tmp_path, open_umask):
    data = tmp_path / "data"
    (data / "recordings" / "c1").mkdir(parents=True)
    for path in (data / "ivr.sqlite3", data / "recordings" / "c1" / "name.wav"):
        path.write_bytes(b"x")
    (data / "link").symlink_to("/etc/hostname")
    assert files.tighten(data) == 5  # data, recordings, c1 and two files
    for folder, _dirs, names in os.walk(data):
        assert _mode(Path(folder)) == 0o700
        for name in names:
            path = Path(folder) / name
            assert path.is_symlink() or _mode(path) == 0o600
    assert _mode(Path("/etc/hostname")) & 0o044  # a link's target is never touched
    assert files.tighten(data) == 0


def test_the_command_line_sets_the_umask_first(tmp_path, monkeypatch):
    from ivr.cli import main as cli

    seen: list[int] = []

    def fake(_args) -> int:
        seen.append(os.umask(0o077))
        return 0

    monkeypatch.setattr(cli, "cmd_pbx_status", fake)
    old = os.umask(0o022)
    try:
        assert cli.main(["pbx", "status"]) == 0
    finally:
        os.umask(old)
    assert seen == [0o077]
