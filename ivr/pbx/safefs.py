"""File operations root performs inside folders the PBX user owns.

The PBX user can rename, replace or symlink anything in its own folders. Root following
such a link (to /etc/passwd, another instance, the data folder) would write, chown or
read what the PBX user chose. So every path below the instance folder is walked one
component at a time with O_NOFOLLOW from a folder descriptor, files are created with
O_EXCL and put in place by rename (which replaces a planted link instead of following
it), and ownership and modes are changed through descriptors of what was opened.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path, PurePath

Owner = tuple[int, int]  # (uid, gid)

DIR_MODE = 0o700
FILE_MODE = 0o600
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class UnsafePath(OSError):
    """A path below the instance folder is a link, or not what it should be."""


def _parts(rel: PurePath | str) -> list[str]:
    parts = [p for p in PurePath(rel).parts if p not in ("", ".")]
    if any(p == ".." or "/" in p for p in parts) or PurePath(rel).is_absolute():
        raise UnsafePath(f"{rel}: expected a plain relative path")
    return parts


def _own(fd: int, owner: Owner | None, mode: int) -> None:
    if owner is not None:
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid) != owner:
            os.fchown(fd, *owner)
    os.fchmod(fd, mode)


@contextlib.contextmanager
def open_dir(base: Path, rel: PurePath | str = "", *, create: bool = False,
             owner: Owner | None = None) -> Iterator[int]:
    """A descriptor of base/rel reached without following links below base.

    With `create`, missing folders are made (0700, given to `owner`); folders that exist
    are left as they are.
    """
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in _parts(rel):
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                _own(child, owner, DIR_MODE)
            except OSError as exc:
                raise UnsafePath(f"{base / PurePath(rel)}: {part} is not a plain folder "
                                 f"({exc.strerror})") from exc
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def make_dirs(base: Path, rel: PurePath | str, owner: Owner | None) -> None:
    """base/rel and the folders between, owned by `owner`, 0700."""
    parts = _parts(rel)
    for depth in range(1, len(parts) + 1):
        with open_dir(base, PurePath(*parts[:depth]), create=True, owner=owner) as fd:
            _own(fd, owner, DIR_MODE)


def write_file(base: Path, rel: PurePath | str, data: bytes, owner: Owner | None) -> None:
    """Replace base/rel with `data`, 0600 and owned by `owner`, by rename."""
    parts = _parts(rel)
    with open_dir(base, PurePath(*parts[:-1])) as dir_fd:
        tmp = f".{parts[-1]}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     FILE_MODE, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                out.write(data)
            _own(fd, owner, FILE_MODE)
            os.replace(tmp, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        finally:
            os.close(fd)


def open_append(base: Path, rel: PurePath | str, owner: Owner | None) -> int:
    """A descriptor appending to base/rel (made 0600 for `owner`); a link is refused."""
    parts = _parts(rel)
    with open_dir(base, PurePath(*parts[:-1])) as dir_fd:
        fd = os.open(parts[-1], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                     | os.O_NONBLOCK | os.O_CLOEXEC, FILE_MODE, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePath(f"{base / PurePath(rel)}: not a plain file")
    _own(fd, owner, FILE_MODE)
    return fd


def read_small(base: Path, rel: PurePath | str, limit: int = 4096) -> bytes | None:
    """The first `limit` bytes of a plain file base/rel; None if missing or not plain."""
    parts = _parts(rel)
    try:
        with open_dir(base, PurePath(*parts[:-1])) as dir_fd:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit)
    finally:
        os.close(fd)


def unlink(base: Path, rel: PurePath | str) -> None:
    """Remove base/rel (a link is removed, not followed); missing is fine."""
    parts = _parts(rel)
    try:
        with open_dir(base, PurePath(*parts[:-1])) as dir_fd:
            os.unlink(parts[-1], dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def _hand_over_entry(dir_fd: int, name: str, owner: Owner | None) -> None:
    """Give one entry of dir_fd to `owner` (0600 files, 0700 folders); links untouched.

    An entry that is gone by now (a temporary file renamed into place by another thread
    while a folder was walked) is nothing to hand over."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        return
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        try:
            fd = os.open(name, _DIR_FLAGS if stat.S_ISDIR(st.st_mode) else _FILE_FLAGS,
                         dir_fd=dir_fd)
        except OSError:
            return  # replaced between the two calls: whatever it is now is not ours to fix
        try:
            now = os.fstat(fd)
            if stat.S_ISDIR(now.st_mode):
                _own(fd, owner, DIR_MODE)
            elif stat.S_ISREG(now.st_mode):
                _own(fd, owner, FILE_MODE)
        finally:
            os.close(fd)
    elif owner is not None and (st.st_uid, st.st_gid) != owner:
        # Sockets and FIFOs cannot be opened for fchown; chown the entry itself.
        with contextlib.suppress(FileNotFoundError):
            os.chown(name, *owner, dir_fd=dir_fd, follow_symlinks=False)


def hand_over(base: Path, rel: PurePath | str, owner: Owner | None,
              skip: frozenset[str] = frozenset()) -> None:
    """Give base/rel, and everything below it when a folder, to `owner`.

    `skip` names entries directly in base/rel that keep their owner (root's own files).
    Links are neither followed nor changed.
    """
    parts = _parts(rel)
    if parts:
        with open_dir(base, PurePath(*parts[:-1])) as parent:
            _hand_over_entry(parent, parts[-1], owner)
            st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            return
    with open_dir(base, PurePath(*parts)) as top:
        if not parts:
            _own(top, owner, DIR_MODE)
        for root, dirs, files, root_fd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
            if root == ".":
                dirs[:] = [d for d in dirs if d not in skip]
                files = [f for f in files if f not in skip]
            for name in dirs + files:
                _hand_over_entry(root_fd, name, owner)
