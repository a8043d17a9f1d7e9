"""One running Asterisk: its folder, rendered configs, start, stop, status and CLI.

Each instance keeps everything (configs, AstDB, spool, logs, control socket) in its own
folder inside the root, so tests can run isolated instances side by side.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .. import contract, prompts
from ..config import Settings
from .render import agi_backup_lines, render_all
from .root import AsteriskRoot

AMI_USER = "ivr"
FALLBACK_RING_SECONDS = 25


class PbxError(RuntimeError):
    """Asterisk did not start, stop or answer as expected."""


@dataclass
class PbxInstance:
    settings: Settings
    root: AsteriskRoot

    # --- where things are -----------------------------------------------------------
    @property
    def inner_dir(self) -> Path:
        """The instance folder as Asterisk sees it (inside the root)."""
        return Path("/var/lib/ivr-pbx") / self.settings.instance

    @property
    def host_dir(self) -> Path:
        return self.root.host_path(self.inner_dir)

    @property
    def conf_inner(self) -> str:
        return str(self.inner_dir / "etc" / "asterisk.conf")

    @property
    def spool_dir(self) -> Path:
        return self.host_dir / "spool"

    @property
    def fallback_recordings_dir(self) -> Path:
        return self.spool_dir / contract.SPOOL_FALLBACK_DIR

    @property
    def fallback_dir(self) -> Path:
        """Fallback numbers the controller writes for the dialplan (contract.DIR_FALLBACK)."""
        return self.host_dir / contract.DIR_FALLBACK

    @property
    def stamp_dir(self) -> Path:
        """Hang-up stamps the dialplan writes for the controller (contract.DIR_STAMPS)."""
        return self.host_dir / contract.DIR_STAMPS

    @property
    def log_file(self) -> Path:
        return self.host_dir / "log" / "messages"

    @property
    def pid_file(self) -> Path:
        return self.host_dir / "run" / "asterisk.pid"

    @property
    def ami_secret(self) -> str:
        path = self.host_dir / "ami.secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(24))
        return path.read_text().strip()

    def inner_path(self, host_path: Path) -> str:
        """The path Asterisk sees for a file under the instance folder."""
        return str(self.inner_dir / host_path.relative_to(self.host_dir))

    # --- configuration --------------------------------------------------------------
    def values(self) -> dict[str, str]:
        s = self.settings
        inst = str(self.inner_dir)
        return {
            "inst": inst,
            "instance": s.instance,
            "moddir": self.root.module_dir(),
            "sip_host": s.sip_host,
            "sip_port": str(s.sip_port),
            "ami_host": s.ami_host,
            "ami_port": str(s.ami_port),
            "ami_user": AMI_USER,
            "ami_secret": self.ami_secret,
            "ami_permit": "127.0.0.0/255.0.0.0" if s.ami_host.startswith("127.")
            else f"{s.ami_host}/255.255.255.255",
            "agi_host": s.agi_host,
            "agi_port": str(s.agi_port),
            "agi_backup_lines": agi_backup_lines(s.agi_backups, contract.ROUTE_INBOUND),
            "screen_backup_lines": agi_backup_lines(s.agi_backups, contract.ROUTE_SCREEN),
            "park_seconds": str(contract.PARK_SECONDS),
            "gateway_host": s.gateway_host,
            "gateway_port": str(s.gateway_port),
            "fax_host": s.fax_host,
            "fax_port": str(s.fax_port),
            "trunk_match": s.trunk_match,
            "rtp_start": str(s.rtp_start),
            "rtp_end": str(s.rtp_end),
            "sounds": f"{inst}/sounds",
            "spool": f"{inst}/spool",
            "fallback_dir": f"{inst}/{contract.DIR_FALLBACK}",
            "stamp_dir": f"{inst}/{contract.DIR_STAMPS}",
            "fallback_ring_seconds": str(FALLBACK_RING_SECONDS),
        }

    def render(self) -> None:
        """Write configs and make the folders and prompts the dialplan needs."""
        for sub in ("etc", "db", "keys", "spool", "run", "log", "cache", "sounds/moh",
                    f"spool/{contract.SPOOL_FALLBACK_DIR}", contract.DIR_FALLBACK,
                    contract.DIR_STAMPS):
            (self.host_dir / sub).mkdir(parents=True, exist_ok=True)
        render_all(self.host_dir / "etc", self.values())
        cache = self.settings.prompts_cache_dir
        for name, text in prompts.FALLBACK_PROMPTS.items():
            prompts.install(text, self.host_dir / "sounds" / f"{name}.wav", cache)

    # --- lifecycle ------------------------------------------------------------------
    def asterisk(self, *args: str) -> list[str]:
        return self.root.command("/usr/sbin/asterisk", "-C", self.conf_inner, *args)

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # A stale pid file could name a process that is no longer ours.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"asterisk" in cmdline and self.conf_inner.encode() in cmdline else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def cli(self, command: str, timeout: float = 30) -> str:
        """Run one Asterisk CLI command through the control socket; return its output."""
        out = subprocess.run(self.asterisk("-rx", command), capture_output=True, text=True,
                             timeout=timeout)
        if out.returncode != 0:
            raise PbxError(f"asterisk -rx {command!r} failed: {out.stderr.strip() or out.stdout}")
        return out.stdout

    def start(self, timeout: float = 90) -> None:
        """Render, start Asterisk in the background, and wait until it is fully booted."""
        self.render()
        if self.is_running():
            self.cli("module reload")
            self.cli("dialplan reload")
            return
        self._check_ports_free()
        for stale in ("asterisk.ctl", "asterisk.pid"):
            (self.host_dir / "run" / stale).unlink(missing_ok=True)
        with open(self.host_dir / "log" / "startup.log", "ab") as out:
            code = subprocess.call(self.asterisk("-n"), stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=out, timeout=60)
        if code != 0:
            raise PbxError(f"asterisk exited {code} at start; see {self.host_dir}/log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.host_dir / "run" / "asterisk.ctl").exists():
                result = subprocess.run(self.asterisk("-rx", "core waitfullybooted"),
                                        capture_output=True, text=True, timeout=timeout)
                if result.returncode == 0 and "fully booted" in result.stdout.lower():
                    return
            time.sleep(0.2)
        raise PbxError(f"Asterisk did not finish booting in {timeout:.0f}s; "
                       f"see {self.log_file}")

    def _check_ports_free(self) -> None:
        """Refuse to start when another program holds our ports.

        Asterisk still boots "fully" when its SIP transport cannot bind, and would then
        silently take no calls, so the ports are checked first.
        """
        import socket

        s = self.settings
        for kind, host, port, what in (
                (socket.SOCK_DGRAM, s.sip_host, s.sip_port, "SIP (IVR_SIP_PORT)"),
                (socket.SOCK_STREAM, s.ami_host, s.ami_port, "AMI (IVR_AMI_PORT)")):
            with socket.socket(socket.AF_INET, kind) as sock:
                if kind == socket.SOCK_STREAM:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((host, port))
                except OSError as exc:
                    raise PbxError(f"{what} port {host}:{port} is in use by another program "
                                   f"({exc.strerror}); stop it or choose another port") from exc

    def stop(self, timeout: float = 20) -> None:
        """Stop Asterisk cleanly, then by signal if it does not go."""
        pid = self.pid()
        if pid is None:
            return
        try:
            self.cli("core stop now", timeout=10)
        except (PbxError, subprocess.TimeoutExpired):
            pass
        deadline = time.monotonic() + timeout
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    return
                deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if self.pid() is None:
                    return
                time.sleep(0.1)
        raise PbxError(f"Asterisk (pid {pid}) did not stop")

    def status(self) -> dict[str, object]:
        pid = self.pid()
        info: dict[str, object] = {
            "instance": self.settings.instance, "running": pid is not None, "pid": pid,
            "version": self.root.version, "root": str(self.root.path),
            "folder": str(self.host_dir),
            "sip": f"{self.settings.sip_host}:{self.settings.sip_port}",
            "ami": f"{self.settings.ami_host}:{self.settings.ami_port}",
            "agi": f"{self.settings.agi_host}:{self.settings.agi_port}",
        }
        if pid is not None:
            try:
                info["channels"] = self.cli("core show channels count").strip().splitlines()
            except (PbxError, subprocess.TimeoutExpired) as exc:
                info["error"] = str(exc)
        return info
