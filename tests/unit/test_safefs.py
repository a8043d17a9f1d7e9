"""safefs: root's file operations in the PBX user's folders (the parts that need no PBX)."""

from __future__ import annotations

import os
import stat

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


def test_the_instances_parents_open_to_the_pbx_user_whatever_the_umask(tmp_path):
    """`ivr cluster up` first on a fresh machine (umask 077) made /var/lib/ivr-pbx 0700:
    the PBX user could not reach its own folder and Asterisk did not boot."""
    from ivr.pbx.instance import _traversable_parents

    parent = tmp_path / "var" / "lib" / "ivr-pbx"
    mask = os.umask(0o077)
    try:
        _traversable_parents(parent)
    finally:
        os.umask(mask)
    assert [stat.S_IMODE((tmp_path / p).stat().st_mode)
            for p in ("var", "var/lib", "var/lib/ivr-pbx")] == [0o755] * 3
    os.chmod(parent, 0o700)  # made so by an earlier version: repaired
    _traversable_parents(parent)
    assert stat.S_IMODE(parent.stat().st_mode) == 0o755
