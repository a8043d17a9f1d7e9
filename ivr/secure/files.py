"""Private files and folders: the process umask, 0700 folders, 0600 writes, handing to the PBX."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


def private_umask() -> None:
    """Whatever this process (and the programs it starts) creates is its owner's alone."""
    os.umask(UMASK)


def private_dir(path: Path) -> Path:
    """`path` and any missing parents made 0700 (whatever the umask).

    Folders that exist already are left as they are: they may be shared ones such as
    ~/.config or a user's working folder (`tighten` deals with the data folder's own)."""
    missing: list[Path] = []
    here = path
    while not here.exists():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made meanwhile by another task or process
            pass
        os.chmod(folder, DIR_MODE)
    return path


def create_private(path: Path) -> Path:
    """Create `path` empty and 0600 if it does not exist (before a library opens it with
    its own modes, e.g. SQLite or a log handler); an existing file is tightened."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    os.close(fd)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, FILE_MODE)
    return path


def write_private(path: Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (a 0600 temporary file, synced, renamed over it)."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def tighten(root: Path) -> int:
    """Folders 0700 and files 0600 (no group or other bits) under `root`, which a
    version before this one left 0755/0644; symbolic links are not followed. Returns how
    many modes were changed."""
    changed = 0
    if not root.is_dir():
        return 0
    for folder, dirs, names in os.walk(root):
        for name, wanted in [*((d, DIR_MODE) for d in dirs), *((n, FILE_MODE) for n in names),
                             *([("", DIR_MODE)] if folder == str(root) else [])]:
            path = os.path.join(folder, name) if name else folder
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & 0o077:
                continue
            os.chmod(path, stat.S_IMODE(mode) & wanted)
            changed += 1
    return changed


def give_to_pbx(pbx: Any, path: Path, top: Path | None = None) -> None:
    """Let Asterisk read (or write, for a folder) `path` that the controller made for it;
    with `top`, also every folder from `top` down to `path`'s own.

    PbxInstance.give_to_pbx (the PBX run as its own user: chown to it, 0600/0700) is being
    added separately; until it is there Asterisk runs as root and reads our 0600 files
    anyway, so this does nothing. Looked up by name so both changes merge cleanly."""
    hand = getattr(pbx, "give_to_pbx", None)
    if hand is None:
        return
    if top is not None and path.is_relative_to(top):
        for folder in reversed(path.parents):
            if folder.is_relative_to(top):
                hand(folder)
    hand(path)
