"""The keyring's home: the key file (or IVR_KEYS), its checks, and this process's keyring.

The key file is JSON, kept outside the data folder (a copy of the data folder, a backup
of it or a stolen disk image of it holds no key), 0600 and owned by the user running the
controller; it is refused otherwise:

    {"format": "ivr-keyring-1", "active": "<key id>",
     "keys": {"<key id>": {"key": "<base64, 32 bytes>", "created": "<ISO time>"}},
     "retired": [{"id": "<key id>", "retired_at": "<ISO time>"}]}

IVR_KEYS may carry the same JSON instead (a container secret); it then wins over the
file, and `ivr keys rotate` refuses, since it cannot change the environment. A running
process re-reads the file when it changes, so a rotation reaches the controller without
a restart. No function here prints or logs key material, and no exception quotes it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ivr.config import Settings
from ivr.secure import crypto, files

log = logging.getLogger(__name__)

ENV_KEYS = "IVR_KEYS"
FORMAT = "ivr-keyring-1"
RECHECK_SECONDS = 1.0  # how often a process looks for a changed key file


class KeyFileError(RuntimeError):
    """No usable keyring: missing, unsafe or malformed key file; the message says why."""


@dataclass(frozen=True)
class KeyFile:
    """The parsed key file: the keyring plus what `ivr keys status` shows."""

    ring: crypto.Keyring
    created: Mapping[str, str]  # key id -> ISO time
    retired: tuple[Mapping[str, str], ...] = ()


# --- reading and checking ----------------------------------------------------------------

def parse(text: str, source: str) -> KeyFile:
    """A key file's JSON; KeyFileError naming `source` (never quoting the text)."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise KeyFileError(f"{source}: not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyFileError(f"{source}: expected a keyring of format {FORMAT!r}")
    raw = doc.get("keys")
    if not isinstance(raw, dict) or not raw:
        raise KeyFileError(f"{source}: no keys")
    keys: dict[str, bytes] = {}
    created: dict[str, str] = {}
    for key_id, entry in raw.items():
        try:
            keys[str(key_id)] = base64.b64decode(entry["key"], validate=True)
        except (TypeError, KeyError, binascii.Error):
            raise KeyFileError(f"{source}: key {key_id!r} is not base64") from None
        created[str(key_id)] = str(entry.get("created", ""))
    try:
        ring = crypto.Keyring(keys, str(doc.get("active", "")))
    except crypto.CryptoError as exc:
        raise KeyFileError(f"{source}: {exc}") from None
    retired = tuple(r for r in doc.get("retired", []) if isinstance(r, dict))
    return KeyFile(ring, created, retired)


def dump(key_file: KeyFile) -> str:
    ring = key_file.ring
    return json.dumps({
        "format": FORMAT, "active": ring.active,
        "keys": {key_id: {"key": base64.b64encode(ring.material(key_id)).decode("ascii"),
                          "created": key_file.created.get(key_id, "")} for key_id in ring},
        "retired": list(key_file.retired)}, indent=2) + "\n"


def check_place(path: Path, data_dir: Path) -> None:
    """Refuse a key file inside the data folder: whoever has a copy of it has the keys."""
    key, data = path.expanduser().resolve(), data_dir.expanduser().resolve()
    if key == data or key.is_relative_to(data):
        raise KeyFileError(f"key file {path} is inside the data folder {data_dir}; keep it "
                           "elsewhere (IVR_KEY_FILE), or a copy of the data holds its keys")


def check_file(path: Path) -> None:
    """Refuse a key file that others could read or change."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"no key file at {path}: run `ivr keys init` (or set "
                           f"IVR_KEY_FILE or {ENV_KEYS})") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise KeyFileError(f"key file {path} is readable or writable by group or others "
                           f"(mode {stat.S_IMODE(info.st_mode):04o}); chmod 600 it")
    if info.st_uid != os.geteuid():
        raise KeyFileError(f"key file {path} belongs to another user (uid {info.st_uid})")


def read(path: Path, data_dir: Path) -> KeyFile:
    check_place(path, data_dir)
    check_file(path)
    return parse(path.read_text(encoding="utf-8"), str(path))


def from_settings(settings: Settings, env: Mapping[str, str] | None = None) -> KeyFile:
    """IVR_KEYS if set, else the key file of the settings (checked)."""
    text = (os.environ if env is None else env).get(ENV_KEYS, "")
    if text.strip():
        return parse(text, ENV_KEYS)
    return read(settings.key_file, settings.data_dir)


# --- writing -----------------------------------------------------------------------------

def write(path: Path, key_file: KeyFile) -> None:
    """Replace the key file atomically (0600; a new folder for it is made 0700)."""
    files.write_private(path, dump(key_file).encode("utf-8"))


def init(settings: Settings, now: datetime | None = None) -> KeyFile:
    """A new key file with one 256-bit key; KeyFileError if one exists already."""
    path = settings.key_file
    check_place(path, settings.data_dir)
    if path.exists() or path.is_symlink():
        raise KeyFileError(f"a key file exists already at {path}; it is never overwritten "
                           "(the data sealed with it would be lost)")
    when = now or datetime.now(UTC)
    ring = crypto.new_keyring(when)
    made = KeyFile(ring, {ring.active: when.isoformat()})
    files.private_dir(path.parent)
    # O_EXCL: two processes starting at once cannot both make (and use) a key file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, files.FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(dump(made))
        handle.flush()
        os.fsync(handle.fileno())
    return made


def ensure(settings: Settings, env: Mapping[str, str] | None = None) -> bool:
    """At a service's start: make the key file if there is none (and no IVR_KEYS), then
    check it. True when it was made now (the caller says so, with the path)."""
    if (os.environ if env is None else env).get(ENV_KEYS, "").strip():
        from_settings(settings, env)
        return False
    try:
        init(settings)
        made = True
    except KeyFileError:
        if not settings.key_file.exists():
            raise
        made = False
    read(settings.key_file, settings.data_dir)
    return made


def add_key(key_file: KeyFile, now: datetime | None = None) -> KeyFile:
    """The same keyring with a new key, made the active one."""
    when = now or datetime.now(UTC)
    key_id = crypto.new_key_id(when)
    while key_id in key_file.ring:
        key_id = crypto.new_key_id(when)
    return KeyFile(key_file.ring.with_key(key_id, crypto.new_key()),
                   {**key_file.created, key_id: when.isoformat()}, key_file.retired)


def retire(key_file: KeyFile, key_id: str, now: datetime | None = None) -> KeyFile:
    """The keyring without `key_id` (its material gone; its id and time listed)."""
    when = (now or datetime.now(UTC)).isoformat()
    return KeyFile(key_file.ring.without(key_id),
                   {k: v for k, v in key_file.created.items() if k != key_id},
                   (*key_file.retired, {"id": key_id, "retired_at": when}))


# --- this process's keyring --------------------------------------------------------------

class KeySource:
    """Where this process gets its keyring; the key file is re-read when it changes."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.env = dict(os.environ if env is None else env)
        self._ring: crypto.Keyring | None = None
        self._seen: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            info = self.settings.key_file.stat()
        except OSError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def keyring(self, fresh: bool = False) -> crypto.Keyring:
        """The keyring; `fresh`: re-read the file now (a value named an unknown key)."""
        with self._lock:
            now = time.monotonic()
            if self._ring is not None and self.env.get(ENV_KEYS, "").strip():
                return self._ring
            if self._ring is not None and not fresh and now - self._checked < RECHECK_SECONDS:
                return self._ring
            self._checked = now
            signature = self._signature()
            if self._ring is None or signature != self._seen:
                try:
                    self._ring = from_settings(self.settings, self.env).ring
                except KeyFileError as exc:
                    if self._ring is None:
                        raise
                    # A key file gone or broken while running: the keys read before still
                    # seal and open what this process handles; calls go on.
                    log.warning("%s; going on with the keys read before", exc)
                self._seen = signature
            return self._ring


_source: KeySource | None = None
_lock = threading.Lock()


def use(source: KeySource | None) -> KeySource | None:
    """Set where this process's keyring comes from (None: the IVR_* settings, on first
    use); returns the one it replaces."""
    global _source
    with _lock:
        previous, _source = _source, source
    return previous


def current(fresh: bool = False) -> crypto.Keyring:
    """This process's keyring (KeyFileError when there is none usable)."""
    global _source
    with _lock:
        if _source is None:
            from ivr.config import from_env

            _source = KeySource(from_env())
        source = _source
    return source.keyring(fresh)


def opening(fn: Callable[[crypto.Keyring], Any]) -> Any:
    """fn(keyring), once more with the key file re-read if fn met an unknown key id (a
    rotation by another process added it since this process last looked)."""
    try:
        return fn(current())
    except crypto.UnknownKeyError:
        return fn(current(fresh=True))
