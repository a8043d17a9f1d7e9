"""Kamailio as the SIP entry of several nodes: its configuration rendered, started, drained.

The template is kamailio_conf/kamailio.cfg (placeholders as in ivr.pbx.render); the
nodes go into a dispatcher list beside it. Kamailio runs as Debian's `kamailio` user when
started by root (its own `-u/-g`), else as ourselves, and answers `kamcmd` on a Unix
socket in its 0700 folder: that is how a node is drained (`ivr cluster drain NODE`:
dispatcher state "disabled", so no new call goes there while calls already on it go on,
their in-dialog requests following the Record-Route) and put back ("active").
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ivr.cluster.accounts import service_user
from ivr.pbx.render import REPO, render_text

TEMPLATE = REPO / "kamailio_conf" / "kamailio.cfg"
SERVICE_USER = "kamailio"  # made by Debian's kamailio package
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
SET_ID = 1  # the dispatcher set of answering nodes
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
#: kamcmd dispatcher states: what we set, and how `status` names what Kamailio reports.
DRAINED, ACTIVE = "d", "a"
_FLAGS = {"A": "active", "I": "inactive", "D": "drained", "T": "trying", "P": "probing"}


class KamailioError(RuntimeError):
    """Kamailio is missing, its configuration is refused, or it does not answer."""


@dataclass(frozen=True)
class Node:
    """One answering node: an Asterisk (and its controllers) at host:port."""

    name: str
    host: str
    port: int

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"node name {self.name!r}: expected [a-z0-9_-], max 40")
        ipaddress.ip_address(self.host)
        if not 1 <= self.port <= 65535:
            raise ValueError(f"node {self.name}: port {self.port}: expected 1-65535")

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"


def module_path() -> Path:
    found = [MODULES, *Path("/usr/lib").glob("*/kamailio/modules")]
    for folder in found:
        if (folder / "dispatcher.so").exists():
            return folder
    raise KamailioError("Kamailio's modules are not installed: apt-get install kamailio")


@dataclass
class KamailioProxy:
    """One Kamailio in `folder`, listening on sip_host:sip_port, in front of `nodes`."""

    folder: Path
    sip_host: str
    sip_port: int
    nodes: list[Node]
    trunk_match: tuple[str, ...] = ("127.0.0.1",)
    probe_seconds: int = 2
    fail_over_ms: int = 2000
    name: str = "ivr-sip"
    _started: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def config_file(self) -> Path:
        return self.folder / "kamailio.cfg"

    @property
    def ctl_socket(self) -> Path:
        return self.folder / "run" / "ctl.sock"

    @property
    def pid_file(self) -> Path:
        return self.folder / "run" / "kamailio.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "kamailio.log"

    def _owner(self) -> pwd.struct_passwd | None:
        return service_user(SERVICE_USER, "kamailio")

    def _trunk_check(self) -> str:
        tests = []
        for item in self.trunk_match:
            net = ipaddress.ip_network(item.strip(), strict=False)  # ValueError if bad
            tests.append(f'$si == "{net.network_address}"' if net.num_addresses == 1
                         else f'is_in_subnet("$si", "{net}")')
        return " || ".join(tests) or "0"

    def render(self) -> None:
        """Write kamailio.cfg and the dispatcher list (0600; the run folder Kamailio's)."""
        if len({n.name for n in self.nodes}) != len(self.nodes):
            raise ValueError("node names must be unique")
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        run = self.folder / "run"
        run.mkdir(mode=0o700, exist_ok=True)
        owner = self._owner()
        if owner is not None:
            os.chown(run, owner.pw_uid, owner.pw_gid)
        values = {"sip_host": str(ipaddress.ip_address(self.sip_host)),
                  "sip_port": str(int(self.sip_port)), "module_path": str(module_path()),
                  "dispatcher_list": str(self.folder / "dispatcher.list"),
                  "ctl_socket": str(self.ctl_socket), "probe_seconds": str(self.probe_seconds),
                  "fail_over_ms": str(self.fail_over_ms), "trunk_check": self._trunk_check(),
                  "log_prefix": self.name}
        text = render_text(TEMPLATE.read_text(), values, str(TEMPLATE.relative_to(REPO)))
        listing = "".join(f"{SET_ID} {n.uri} 0 0 node={n.name}\n" for n in self.nodes)
        for path, content in ((self.config_file, text),
                              (self.folder / "dispatcher.list", listing)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(content)

    def check(self) -> None:
        """Kamailio's own check of the rendered configuration (kamailio -c)."""
        done = subprocess.run([_binary("kamailio"), "-c", "-f", str(self.config_file)],
                              capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.splitlines() if "ERROR" in ln or "error" in ln]
            raise KamailioError(f"{self.config_file}: Kamailio refuses it: "
                                f"{(lines or done.stderr.splitlines() or ['?'])[-1]}")

    def _argv(self) -> list[str]:
        """Kamailio in the foreground (-DD: no daemon, its workers still forked)."""
        argv = [_binary("kamailio"), "-f", str(self.config_file), "-P", str(self.pid_file),
                "-DD", "-E", "-w", str(self.folder / "run")]
        owner = self._owner()
        if owner is not None:
            argv += ["-u", owner.pw_name, "-g", str(owner.pw_gid)]
        return argv

    def exec_foreground(self) -> None:
        """Render, check, then become Kamailio (containers, service managers)."""
        self.render()
        self.check()
        argv = self._argv()
        os.execv(argv[0], argv)

    def start(self, timeout: float = 30) -> None:
        self.render()
        self.check()
        argv = self._argv()
        log = open(self.log_file, "ab")
        try:
            # Its own process group: stop() ends the workers too, never only the main one.
            self._started = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=self.folder,
                                             start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._started.poll() is not None:
                raise KamailioError(f"kamailio exited {self._started.returncode} at start; "
                                    f"see {self.log_file}")
            if self.ctl_socket.exists() and self._rpc("core.version", check=False)[0] == 0:
                return
            time.sleep(0.1)
        raise KamailioError(f"kamailio did not answer within {timeout:.0f}s; see "
                            f"{self.log_file}")

    def stop(self, timeout: float = 15) -> None:
        proc = self._started
        if proc is None:
            return
        if proc.poll() is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        try:  # a worker the main process did not take with it
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # --- kamcmd --------------------------------------------------------------------------

    def _rpc(self, *args: str, check: bool = True) -> tuple[int, str]:
        done = subprocess.run([_binary("kamcmd"), "-s", f"unix:{self.ctl_socket}", *args],
                              capture_output=True, text=True, timeout=15,
                              stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise KamailioError(f"kamcmd {args[0]}: {(done.stderr or done.stdout).strip()}")
        return done.returncode, done.stdout

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise KamailioError(f"no node {name!r}; the nodes are {known}")

    def drain(self, name: str) -> None:
        """No new call goes to the node; its calls in progress go on."""
        self._rpc("dispatcher.set_state", DRAINED, str(SET_ID), self.node(name).uri)

    def undrain(self, name: str) -> None:
        self._rpc("dispatcher.set_state", ACTIVE, str(SET_ID), self.node(name).uri)

    def states(self) -> dict[str, str]:
        """Each node's state as Kamailio has it: active, inactive, drained, probing."""
        _, out = self._rpc("dispatcher.list")
        by_uri = {n.uri: n.name for n in self.nodes}
        found: dict[str, str] = {}
        uri = None
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("URI:"):
                uri = line.split(":", 1)[1].strip()
            elif line.startswith("FLAGS:") and uri in by_uri:
                # e.g. "AP": the state, then P while it is being probed (X when not).
                flags = line.split(":", 1)[1].strip() or "?"
                state = _FLAGS.get(flags[0], flags[0])
                found[by_uri[uri]] = state + ("+probing" if "P" in flags[1:] else "")
        return found


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not path:
        raise KamailioError(f"{name} is not installed: apt-get install kamailio")
    return path
