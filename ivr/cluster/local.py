"""A local cluster's processes: started in order, found again, drained, stopped.

`up` starts what is not running yet, in the order each part needs the one before:
PostgreSQL (made once, the schema brought to head once, before any controller starts:
two controllers migrating one new database at once would race), each node's Asterisk,
its controllers (in their own sessions: they outlive the command that started them),
and Kamailio last, so its first probes find the nodes answering. Everything is found
again from the layout saved in the folder and from each program's own pid file: a
second `up` after a crash restarts only what is gone.

No password is passed in an environment or shown: the controllers read PostgreSQL's
from its 0600 file (IVR_DB_PASSWORD_FILE), and the status names the database by its
address only.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr import config
from ivr.cluster.kamailio import KamailioError, KamailioProxy
from ivr.cluster.layout import DB_NAME, STATE_FILE, Layout
from ivr.cluster.postgres import PostgresServer
from ivr.config import Settings
from ivr.pbx.instance import PbxInstance
from ivr.pbx.root import AsteriskRoot, ensure_root, find_root
from ivr.rules.runtime import pid_path

READY_LINE, STOP_LINE = "controller ready", "controller stopping"


class ClusterError(RuntimeError):
    """A part of the cluster did not start or stop; the message says which and where."""


def process_alive(pid: int | None, marker: bytes) -> bool:
    """`pid` runs and its command line holds `marker` (a stale pid file names another)."""
    if not pid:
        return False
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Controller:
    """One controller process of a node (`ivr serve` with its node's settings)."""

    settings: Settings

    @property
    def log_file(self) -> Path:
        return self.settings.log_dir / f"controller-{self.settings.instance}.log"

    @property
    def out_file(self) -> Path:  # what the process itself prints (a crash's traceback)
        return self.settings.log_dir / "serve.out"

    @property
    def agi(self) -> str:
        return f"{self.settings.agi_host}:{self.settings.agi_port}"

    def pid(self) -> int | None:
        pid = _read_pid(pid_path(self.settings))
        return pid if process_alive(pid, b"ivr") else None

    def ready(self) -> bool:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return False
        return READY_LINE in text.split(STOP_LINE)[-1]

    def start(self) -> subprocess.Popen[bytes]:
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        # Mark where this start's lines begin: ready() reads only what follows.
        with open(self.log_file, "a") as log:
            log.write(f"--- {STOP_LINE} (before a new start by ivr cluster up)\n")
        env = {**os.environ, **config.to_env(self.settings)}
        out = open(self.out_file, "ab")
        try:
            return subprocess.Popen([sys.executable, "-m", "ivr.cli", "serve"], env=env,
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            out.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        pid = self.pid()
        if pid is None:
            return
        for current in (sig, signal.SIGKILL):
            try:
                os.kill(pid, current)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process_alive(pid, b"ivr"):
                time.sleep(0.1)
            if not process_alive(pid, b"ivr"):
                return


class LocalCluster:
    """The parts of one local cluster, as its layout places them."""

    def __init__(self, layout: Layout, base: Settings) -> None:
        self.layout = layout.validate()
        self.base = base
        self.postgres = PostgresServer(layout.postgres_dir, port=layout.db_port,
                                       host=layout.db_host)
        # Carriers allowed to send calls: the addresses of the base settings' trunk.
        trunk = tuple(p.strip() for p in base.trunk_match.split(",") if p.strip())
        self.proxy = KamailioProxy(layout.kamailio_dir, layout.entry_host, layout.entry_port,
                                   layout.proxy_nodes(), trunk_match=trunk,
                                   probe_seconds=layout.probe_seconds,
                                   fail_over_ms=layout.fail_over_ms)

    @classmethod
    def found(cls, folder: Path, base: Settings) -> LocalCluster:
        """The cluster `up` made in `folder`."""
        layout = Layout.load(folder)
        if layout is None:
            raise ClusterError(f"no cluster in {folder}: run `ivr cluster up` first")
        return cls(layout, base)

    # --- the parts ----------------------------------------------------------------------
    def _root(self, build: bool = False) -> AsteriskRoot:
        root = ensure_root(self.base.cache_dir) if build else find_root(self.base.cache_dir)
        if root is None:
            raise ClusterError("no Asterisk yet: run `ivr cluster up` (or `make cluster`)")
        return root

    def pbx(self, i: int, root: AsteriskRoot | None = None) -> PbxInstance:
        return PbxInstance(self.layout.settings(self.base, i), root or self._root())

    def controllers(self, i: int) -> list[Controller]:
        return [Controller(self.layout.settings(self.base, i, k))
                for k in range(self.layout.controllers)]

    # --- up -----------------------------------------------------------------------------
    def up(self, timeout: float = 120) -> None:
        lay = self.layout
        lay.folder.mkdir(parents=True, exist_ok=True)
        # Others may pass through (the postgres user to its own folder), not list it.
        os.chmod(lay.folder, 0o711)
        state = lay.folder / STATE_FILE
        fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(lay.to_json(), out, indent=2)
        self.postgres.start()
        if not self.postgres.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"
                                  ).strip():
            self.postgres.create_database(DB_NAME)
        asyncio.run(_migrate(lay.settings(self.base, 0).database_url))
        root = self._root(build=True)
        started: list[Controller] = []
        for i in range(lay.nodes):
            pbx = self.pbx(i, root)
            if not pbx.is_running():  # a running one is left alone: its calls go on
                pbx.start()
            for ctl in self.controllers(i):
                if ctl.pid() is None:
                    ctl.start()
                    started.append(ctl)
        deadline = time.monotonic() + timeout
        for ctl in started:
            while not ctl.ready():
                if time.monotonic() > deadline:
                    raise ClusterError(f"the controller at {ctl.agi} did not get ready in "
                                       f"{timeout:.0f}s; see {ctl.log_file} and "
                                       f"{ctl.out_file}")
                time.sleep(0.2)
        if not self.proxy_up():
            self.proxy.start()

    # --- state --------------------------------------------------------------------------
    def proxy_pid(self) -> int | None:
        pid = _read_pid(self.proxy.pid_file)
        return pid if process_alive(pid, b"kamailio") else None

    def proxy_up(self) -> bool:
        if self.proxy_pid() is None:
            return False
        try:
            self.proxy.states()
        except (KamailioError, OSError, subprocess.TimeoutExpired):
            return False
        return True

    def status(self) -> dict[str, Any]:
        lay = self.layout
        states: dict[str, str] = {}
        proxy_up = self.proxy_up()
        if proxy_up:
            try:
                states = self.proxy.states()
            except KamailioError:
                proxy_up = False
        root = find_root(self.base.cache_dir)
        nodes = []
        for i, name in enumerate(lay.names()):
            pbx = self.pbx(i, root) if root is not None else None
            pbx_pid = pbx.pid() if pbx is not None else None
            nodes.append({
                "name": name, "sip": f"{lay.hosts()[i]}:{lay.sip_port + lay.port_step * i}",
                "dispatcher": states.get(name, "unknown"),
                "asterisk": {"running": pbx_pid is not None, "pid": pbx_pid,
                             "folder": str(pbx.host_dir) if pbx is not None else None},
                "controllers": [{"agi": c.agi, "running": c.pid() is not None,
                                 "pid": c.pid(), "log": str(c.log_file)}
                                for c in self.controllers(i)]})
        return {
            "folder": str(lay.folder),
            "entry": {"sip": f"udp {lay.entry_host}:{lay.entry_port}", "running": proxy_up,
                      "pid": self.proxy_pid(), "log": str(self.proxy.log_file)},
            "database": {"url": self.postgres.safe_url(DB_NAME),
                         "running": self.postgres.is_running(),
                         "log": str(self.postgres.log_file)},
            "nodes": nodes}

    @staticmethod
    def all_running(status: dict[str, Any]) -> bool:
        return bool(status["entry"]["running"] and status["database"]["running"] and all(
            n["asterisk"]["running"] and all(c["running"] for c in n["controllers"])
            for n in status["nodes"]))

    # --- maintenance and down -------------------------------------------------------------
    def drain(self, name: str, back: bool = False) -> str:
        """No new call goes to the node (its calls in progress go on); `back`: undo."""
        self.layout.index(name)
        if not self.proxy_up():
            raise ClusterError("Kamailio is not running: `ivr cluster up` starts it")
        (self.proxy.undrain if back else self.proxy.drain)(name)
        return self.proxy.states().get(name, "unknown")

    def down(self) -> None:
        """Stop everything (the data stays): Kamailio first, so no new call arrives."""
        self._stop_proxy()
        root = find_root(self.base.cache_dir)
        for i in range(self.layout.nodes):
            for ctl in self.controllers(i):
                ctl.stop()
            if root is not None:
                self.pbx(i, root).stop()
        self.postgres.stop("fast")

    def _stop_proxy(self, timeout: float = 15) -> None:
        pid = self.proxy_pid()
        if pid is None:
            return
        # Started in a session of its own: its group is its workers too.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proxy_pid() is not None:
                time.sleep(0.1)
            if self.proxy_pid() is None:
                return


async def _migrate(url: str) -> None:
    from ivr.db.engine import Database

    db = Database(url)
    try:
        await db.create_when_reachable()
    finally:
        await db.close()
