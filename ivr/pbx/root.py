"""Finds or builds the Asterisk installation an instance runs from, and its user.

An `asterisk` of version 22 or newer on the host is used as it is. Otherwise a Debian sid
root is built once with debootstrap into the cache folder and reused: Debian 12 and 13
carry no Asterisk package, sid does (docs/platform.md).

Asterisk never runs as root: the chroot is no boundary for root. Inside the sid root it
runs as a dedicated system user (PBX_USER) whose id is free on the host as well, so the
host never sees the PBX's files as some other account's (the root's own `asterisk` user
is uid 101, which on a host can be anyone, e.g. postgres). A host install runs as the
host's `asterisk` user (the Debian package makes it), else as PBX_USER.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Packages the root needs; python3 runs the process-per-call baseline of the benchmark.
#: The -es package only links sounds/es to the -es-wav files (update-alternatives): the
#: -wav one merely recommends it, and without the link Asterisk has no Spanish at all
#: (a Spanish date read back fails; digits fall back to English).
ROOT_PACKAGES = ("asterisk", "asterisk-modules", "asterisk-core-sounds-en-wav",
                 "asterisk-core-sounds-es-wav", "asterisk-core-sounds-es", "python3")
ROOT_NAME = "asterisk-root-sid"
MARKER = ".ivr-root-ok"
MIN_MAJOR = 22
PBX_USER = "ivrpbx"
HOST_PBX_USER = "asterisk"
# System ids, searched downwards as useradd does for system accounts.
_SYSTEM_IDS = range(999, 99, -1)


class ProvisionError(RuntimeError):
    """The Asterisk root could not be found or built; the message says what to do."""


@dataclass(frozen=True)
class PbxUser:
    """The account Asterisk runs as (ids as both the root and the host see them)."""

    name: str
    uid: int
    gid: int


def _entries(text: str) -> dict[str, tuple[int, int]]:
    """name -> (id, primary group) from passwd text, or (gid, gid) from group text."""
    found: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            group = int(fields[3]) if len(fields) >= 4 and fields[3].isdigit() else int(fields[2])
            found[fields[0]] = (int(fields[2]), group)
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class AsteriskRoot:
    """Where Asterisk lives: `path` is "/" for a host install, else a chroot folder."""

    path: Path
    version: str

    @property
    def chrooted(self) -> bool:
        return self.path != Path("/")

    def command(self, *args: str) -> list[str]:
        """argv running an Asterisk binary (or any program) inside the root."""
        return ["chroot", str(self.path), *args] if self.chrooted else list(args)

    def host_path(self, inner: str | Path) -> Path:
        """The host path of a path as Asterisk sees it."""
        inner = Path(inner)
        return self.path / inner.relative_to("/") if self.chrooted else inner

    def command_as(self, user: PbxUser | None, *args: str) -> list[str]:
        """argv running a program inside the root as `user` (None: as we are).

        Inside the root the chroot binary drops to the user itself (it must be root to
        chroot); for a host install the caller drops privileges (see PbxInstance).
        """
        if self.chrooted and user is not None:
            return ["chroot", f"--userspec={user.uid}:{user.gid}", f"--groups={user.gid}",
                    str(self.path), *args]
        return self.command(*args)

    def find_user(self) -> PbxUser | None:
        """The account Asterisk runs as, if it exists yet."""
        if not self.chrooted:
            for name in (HOST_PBX_USER, PBX_USER):
                try:
                    entry = pwd.getpwnam(name)
                except KeyError:
                    continue
                return _checked(PbxUser(name, entry.pw_uid, entry.pw_gid))
            return None
        users = _entries(_read(self.path / "etc/passwd"))
        if PBX_USER not in users:
            return None
        uid, gid = users[PBX_USER]
        return _checked(PbxUser(PBX_USER, uid, gid))

    def ensure_user(self) -> PbxUser:
        """The account Asterisk runs as, created once (idempotent; safe to race)."""
        found = self.find_user()
        if found is not None:
            return found
        if os.geteuid() != 0:
            raise ProvisionError(f"the PBX user {PBX_USER} does not exist and only root can "
                                 "create it (run `ivr pbx up` or `make run` as root)")
        if self.chrooted:
            ident = _free_id(self.path)
            steps = [["groupadd", "--system", "--gid", str(ident), PBX_USER],
                     ["useradd", "--system", "--uid", str(ident), "--gid", str(ident),
                      "--no-create-home", "--home-dir", "/nonexistent",
                      "--shell", "/usr/sbin/nologin", "--comment", "ivr Asterisk", PBX_USER]]
            argvs = [self.command(*step) for step in steps]
        else:
            argvs = [["useradd", "--system", "--user-group", "--no-create-home",
                      "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                      "--comment", "ivr Asterisk", PBX_USER]]
        for argv in argvs:
            # A second process creating the same account at the same moment makes this
            # fail with "already exists"; the account is then read back below.
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                log.info("%s: exit %d (%s)", " ".join(argv[-8:]), out.returncode,
                         out.stderr.strip()[:200])
        found = self.find_user()
        if found is None:
            raise ProvisionError(f"could not create the PBX user {PBX_USER} in {self.path}")
        log.info("PBX user %s (uid %d, gid %d) ready", found.name, found.uid, found.gid)
        return found

    def module_dir(self) -> str:
        for candidate in ("usr/lib/x86_64-linux-gnu/asterisk/modules",
                          "usr/lib/aarch64-linux-gnu/asterisk/modules",
                          "usr/lib/asterisk/modules"):
            if (self.path / candidate / "res_agi.so").exists():
                return "/" + candidate
        raise ProvisionError(f"no Asterisk modules (res_agi.so) under {self.path}")


def _checked(user: PbxUser) -> PbxUser:
    if user.uid == 0 or user.gid == 0:
        raise ProvisionError(f"the PBX user {user.name} has uid/gid 0; Asterisk must not run "
                             "as root")
    return user


def _free_id(root: Path) -> int:
    """A system id free as uid and gid both inside the root and on the host."""
    taken = {ident for ident, _ in _entries(_read(root / "etc/passwd")).values()}
    taken |= {ident for ident, _ in _entries(_read(root / "etc/group")).values()}
    taken |= {entry.pw_uid for entry in pwd.getpwall()}
    taken |= {entry.gr_gid for entry in grp.getgrall()}
    for ident in _SYSTEM_IDS:
        if ident not in taken:
            return ident
    raise ProvisionError("no free system id (100-999) for the PBX user")


def _version_of(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv + ["-V"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"Asterisk (\d+)\.(\S+)", out.stdout)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


def host_asterisk() -> AsteriskRoot | None:
    """The host's own Asterisk if it is recent enough."""
    binary = shutil.which("asterisk")
    if not binary:
        return None
    version = _version_of([binary])
    if version and _major(version) >= MIN_MAJOR:
        return AsteriskRoot(Path("/"), version)
    log.info("host asterisk %s is older than %d; using a sid root", version, MIN_MAJOR)
    return None


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str | None:
    """The host's Debian mirror from its apt sources (never written into the repo)."""
    candidates: list[str] = []
    for sources in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        stanza_uris: list[str] = []
        suites = ""
        for line in sources.read_text(errors="replace").splitlines() + [""]:
            if line.startswith("URIs:"):
                stanza_uris = line.split(":", 1)[1].split()
            elif line.startswith("Suites:"):
                suites = line.split(":", 1)[1]
            elif not line.strip():
                if stanza_uris and "security" not in suites:
                    candidates.extend(stanza_uris)
                stanza_uris, suites = [], ""
    plain = apt_dir / "sources.list"
    if plain.exists():
        for line in plain.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in line:
                url = next((p for p in parts[1:] if "://" in p), None)
                if url:
                    candidates.append(url)
    for url in candidates:
        if "/debian" in url and "security" not in url:
            return url
    return candidates[0] if candidates else None


def find_root(cache_dir: Path) -> AsteriskRoot | None:
    """An Asterisk ready to run: the host's, or a root already built in the cache."""
    host = host_asterisk()
    if host:
        return host
    root = cache_dir / ROOT_NAME
    marker = root / MARKER
    if marker.exists():
        return AsteriskRoot(root, marker.read_text().strip())
    return None


def _missing_packages(root: Path) -> list[str]:
    status = root / "var/lib/dpkg/status"
    text = status.read_text(errors="replace") if status.exists() else ""
    installed = set(re.findall(r"^Package: (\S+)\nStatus: install ok installed", text, re.M))
    return [p for p in ROOT_PACKAGES if p not in installed]


def _run_with_progress(argv: list[str], what: str) -> int:
    """Run a long command, printing a short progress line per step it reports."""
    print(f"==> {what}", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    steps = 0
    tail: list[str] = []
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        if line.startswith(("I: Retrieving", "I: Validating", "I: Unpacking", "I: Configuring",
                            "I: Extracting", "I: Installing", "Setting up", "Unpacking")):
            steps += 1
            if steps % 25 == 0:
                print(f"    ... {steps} steps, {time.monotonic() - started:.0f}s: "
                      f"{line.strip()[:70]}", flush=True)
    code = proc.wait()
    if code != 0:
        print("\n".join(tail), file=sys.stderr)
    print(f"    {what}: exit {code} after {time.monotonic() - started:.0f}s", flush=True)
    return code


def build_root(cache_dir: Path, attempts: int = 3) -> AsteriskRoot:
    """Build the sid root with debootstrap (about a minute), retrying: sid moves daily."""
    if os.geteuid() != 0:
        raise ProvisionError("building the Asterisk root needs root (debootstrap, chroot)")
    if not shutil.which("debootstrap"):
        raise ProvisionError("debootstrap is not installed: apt-get install debootstrap")
    cache_dir.mkdir(parents=True, exist_ok=True)
    root = cache_dir / ROOT_NAME
    if root.exists() and (root / "usr/sbin/asterisk").exists():
        # A root that worked once is kept; only what is missing is added.
        missing = _missing_packages(root)
        if missing:
            code = _run_with_progress(
                ["chroot", str(root), "apt-get", "install", "-y", "-q", *missing],
                f"adding {' '.join(missing)} to the Asterisk root")
            if code != 0:
                raise ProvisionError(f"could not add {missing} to {root}")
        return _mark(root)
    building = cache_dir / (ROOT_NAME + ".building")
    mirror = debian_mirror()
    for attempt in range(1, attempts + 1):
        shutil.rmtree(building, ignore_errors=True)
        argv = ["debootstrap", "--variant=minbase", "--include=" + ",".join(ROOT_PACKAGES),
                "sid", str(building)]
        if mirror:
            argv.append(mirror)
        code = _run_with_progress(
            argv, f"building a Debian sid root with Asterisk in {building} "
                  f"(attempt {attempt}/{attempts}, about a minute, ~550 MB)")
        if code == 0 and (building / "usr/sbin/asterisk").exists():
            building.rename(root)
            return _mark(root)
        time.sleep(5 * attempt)
    raise ProvisionError(f"debootstrap failed {attempts} times; see the output above")


def _mark(root: Path) -> AsteriskRoot:
    version = _version_of(["chroot", str(root), "/usr/sbin/asterisk"])
    if not version or _major(version) < MIN_MAJOR:
        raise ProvisionError(f"the root at {root} has no usable Asterisk (got {version})")
    (root / MARKER).write_text(version + "\n")
    print(f"    Asterisk {version} ready in {root}", flush=True)
    return AsteriskRoot(root, version)


def ensure_root(cache_dir: Path) -> AsteriskRoot:
    """The Asterisk to use, building the sid root first if there is none yet."""
    found = find_root(cache_dir)
    if not found or (found.chrooted and _missing_packages(found.path)):
        found = build_root(cache_dir)
    if os.geteuid() == 0:
        found.ensure_user()
    return found
