"""safefs: root's file operations in the PBX user's folders (the parts that need no PBX)."""

from __future__ import annotations

import os

from ivr.pbx import safefs


def test_an_entry_gone_while_a_folder_is_walked_is_skipped(tmp_path):
    """Prompts are made by several threads at once: a temporary file listed by one
    thread's walk may be renamed away by another before it is handed over."""
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        safefs._hand_over_entry(fd, ".gone.wav.123.part", None)  # no error
    finally:
        os.close(fd)


def test_hand_over_keeps_files_private(tmp_path):
    folder = tmp_path / "sounds"
    folder.mkdir(mode=0o755)
    (folder / "a.wav").write_bytes(b"x")
    os.chmod(folder / "a.wav", 0o644)
    safefs.hand_over(tmp_path, "sounds", None)
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert oct((folder / "a.wav").stat().st_mode & 0o777) == "0o600"
