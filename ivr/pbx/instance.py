"""One running Asterisk: its folder, rendered configs, start, stop, status and CLI.

Each instance keeps everything (configs, AstDB, spool, logs, control socket) in its own
folder inside the root, so tests can run isolated instances side by side.

Asterisk runs as the PBX user (root.PbxUser) with umask 077: the instance folder and
everything in it belong to that user, folders 0700 and files 0600, except `ami.secret`
(root's, 0600). The controller stays root and reaches in; whatever it puts there for
Asterisk to read goes through give_to_pbx().
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr import contract
from ivr.config import Settings
from ivr.pbx import prompts, safefs
from ivr.pbx.render import CONF_DIR, agi_backup_lines, render_all, render_text
from ivr.pbx.root import AsteriskRoot, PbxUser

AMI_USER = "ivr"
FALLBACK_RING_SECONDS = 25
#: Asterisk creates nothing another account may read.
PBX_UMASK = 0o077
SECRET_FILE = "ami.secret"
#: The test phone's password (ivr/edge/testphone.py), root's like the AMI secret.
TEST_PHONE_SECRET = "test-phone.secret"
GUARD_USER = "ivr-guard"
#: Folders render() makes. fallback/: small files the controller writes and the dialplan
#: reads with FILE(); stamps/: files the dialplan writes with FILE() for the controller.
FOLDERS = ("etc", "db", "keys", "spool", f"spool/{contract.SPOOL_FALLBACK_DIR}", "run",
           "log", "cache", "sounds", "sounds/moh", "sounds/ivr", "sounds/ivr/tts",
           contract.DIR_FALLBACK, contract.DIR_STAMPS)


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
        """The AMI secret, made on first use; never logged or printed."""
        return self.private_secret(SECRET_FILE)

    @property
    def guard_secret(self) -> str:
        """The guard's AMI secret: derived from the AMI secret, so no second file."""
        import hashlib
        import hmac

        return hmac.new(self.ami_secret.encode(), b"ivr-guard", hashlib.sha256).hexdigest()[:40]

    def private_secret(self, name: str) -> str:
        """A random secret in a root-owned 0600 file of the instance folder, made on
        first use; never logged."""
        self._make_instance_dir()
        for _ in range(2):
            try:
                fd = os.open(self.host_dir / name,
                             os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except FileNotFoundError:
                self._new_secret(name)
                continue
            except OSError as exc:  # ELOOP: a link was put in its place
                raise PbxError(f"{self.host_dir / name} is not a plain file; "
                               "remove it") from exc
            with os.fdopen(fd) as handle:
                st = os.fstat(handle.fileno())
                # The folder is the PBX user's: the secret must still be root's own file
                # (not a planted one, not a hard link to someone else's).
                if (not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_mode & 0o077
                        or st.st_uid != os.geteuid()):
                    raise PbxError(f"{self.host_dir / name} is not a private file of "
                                   f"uid {os.geteuid()} (0600); remove it")
                return handle.read(256).strip()
        raise PbxError(f"could not create {self.host_dir / name}")

    def _new_secret(self, name: str) -> None:
        with contextlib.suppress(FileExistsError):
            fd = os.open(self.host_dir / name,
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(24) if name == SECRET_FILE
                             else secrets.token_urlsafe(12))

    # --- the PBX user ---------------------------------------------------------------
    @functools.cached_property
    def pbx_user(self) -> PbxUser | None:
        """The account Asterisk runs as; None when we are not root (it runs as us)."""
        if os.geteuid() != 0:
            return None
        return self.root.ensure_user()

    @property
    def pbx_uid(self) -> int:
        return self.pbx_user.uid if self.pbx_user else os.getuid()

    @property
    def pbx_gid(self) -> int:
        return self.pbx_user.gid if self.pbx_user else os.getgid()

    def _owner(self) -> safefs.Owner | None:
        return (self.pbx_uid, self.pbx_gid) if self.pbx_user else None

    def pbx_owner(self) -> safefs.Owner | None:
        """Who files written for the PBX belong to (None: leave them as made, when not
        running as root)."""
        return self._owner() if os.geteuid() == 0 else None

    def give_to_pbx(self, path: Path) -> None:
        """Hand a file or folder (with what is in it) under the instance folder to the PBX
        user: 0600 files, 0700 folders. A no-op when not running as root.

        For what the controller writes for Asterisk to read (prompts, playback copies,
        fallback files) or to write into. Links are neither followed nor changed.
        """
        if os.geteuid() != 0:
            return
        rel = Path(os.path.normpath(path)).relative_to(self.host_dir)
        if rel.parts and rel.parts[0] in (SECRET_FILE, TEST_PHONE_SECRET):
            raise ValueError(f"{path}: the AMI secret stays root's")
        safefs.hand_over(self.host_dir, rel, self._owner())

    def _make_instance_dir(self) -> None:
        # The parents inside the root stay root's (0755); only the instance folder and
        # what is below it are the PBX user's.
        if not self.host_dir.is_dir():
            _traversable_parents(self.host_dir.parent)
            with contextlib.suppress(FileExistsError):
                self.host_dir.mkdir(mode=0o700)
        if self.host_dir.is_symlink():
            raise PbxError(f"{self.host_dir} is a link; expected a folder")

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
            "rtp_start": str(s.rtp_start),
            "rtp_end": str(s.rtp_end),
            "sounds": f"{inst}/sounds",
            "spool": f"{inst}/spool",
            "fallback_dir": f"{inst}/{contract.DIR_FALLBACK}",
            "stamp_dir": f"{inst}/{contract.DIR_STAMPS}",
            "fallback_ring_seconds": str(FALLBACK_RING_SECONDS),
            "controller_answer_seconds": str(s.controller_answer_seconds),
            # Belt and braces: start() runs Asterisk as the user already; runuser makes a
            # start by hand as root drop to it too. No rungroup: a root remote console
            # would switch to that group for nothing.
            "guard_user": GUARD_USER,
            "guard_secret": self.guard_secret,
            **self.edge_values(),
            "run_as": f"runuser = {self.pbx_user.name}" if self.pbx_user
            else "; runs as the user who starts it (not root)",
        }

    def trunks(self) -> Any:
        """The validated trunks file (ivr.trunks.model.TrunksConfig), or None without one;
        PbxError listing every error when it does not validate."""
        if self.settings.trunks_file is None:
            return None
        from ivr.trunks.validate import load

        config, errors = load(self.settings.trunks_file)
        if config is None:
            raise PbxError("the trunks file has errors (ivr trunks check):\n"
                           + "\n".join(str(e) for e in errors[:20]))
        return config

    def edge_values(self) -> dict[str, str]:
        """The SIP edge's placeholders: trunks (or the single-address trunk), NAT, the
        guard's per-source cap and the optional test phone."""
        from ivr.edge import testphone
        from ivr.trunks import pjsip

        s = self.settings
        config = self.trunks()
        phone = self.private_secret(TEST_PHONE_SECRET) if s.test_phone else None
        legacy = {"gateway_host": s.gateway_host, "gateway_port": str(s.gateway_port),
                  "fax_host": s.fax_host, "fax_port": str(s.fax_port),
                  "trunk_match": s.trunk_match}
        fax = render_text((CONF_DIR / "pjsip" / "fax.conf").read_text(), legacy,
                          "asterisk_conf/pjsip/fax.conf")
        if config is None:
            sections = render_text((CONF_DIR / "pjsip" / "legacy.conf").read_text(), legacy,
                                   "asterisk_conf/pjsip/legacy.conf") + "\n" + fax
            order, per_source = "ip", 0
        else:
            try:
                sections = pjsip.render_trunks(config, s.sip_host, s.sip_port)
            except pjsip.TrunkRenderError as exc:
                raise PbxError(str(exc)) from None
            if config.role("fax") is None:
                sections += "\n" + fax
            order, per_source = "ip,line", config.guard.max_calls_per_source
        if phone is not None:
            order += ",username"
        return {
            "identifier_order": order,
            "udp_nat": pjsip.udp_nat_lines(config),
            "trunk_sections": sections,
            "test_phone_sections": testphone.sections(
                phone, testphone.first_did(s.rules_path)) if phone else
            "; no test phone (IVR_TEST_PHONE=1 adds one)",
            "max_calls_per_source": str(per_source),
            # The test phone registers (its softphone's address is not known beforehand).
            "username_identifier": "load => res_pjsip_endpoint_identifier_user.so\n"
            "load => res_pjsip_registrar.so" if phone
            else "noload => res_pjsip_endpoint_identifier_user.so",
        }

    def render(self) -> None:
        """Write configs and make the folders and prompts the dialplan needs, all of it
        the PBX user's (what is already there is handed over too)."""
        values = self.values()  # makes the instance folder and the secret first
        owner = self._owner()
        for sub in FOLDERS:
            safefs.make_dirs(self.host_dir, sub, owner)
        safefs.hand_over(self.host_dir, "", owner,
                         skip=frozenset({SECRET_FILE, TEST_PHONE_SECRET}))
        render_all(self.host_dir / "etc", values, owner)
        cache = self.settings.prompts_cache_dir
        for name, text in prompts.FALLBACK_PROMPTS.items():
            dest = self.host_dir / "sounds" / f"{name}.wav"
            prompts.install(text, dest, cache)
            self.give_to_pbx(dest)

    # --- lifecycle ------------------------------------------------------------------
    def asterisk(self, *args: str) -> list[str]:
        """argv of an Asterisk command run as we are (remote console: `-rx`)."""
        return self.root.command("/usr/sbin/asterisk", "-C", self.conf_inner, *args)

    def server_argv(self, *args: str) -> list[str]:
        """argv starting the Asterisk server as the PBX user (see _server_kwargs)."""
        return self.root.command_as(self.pbx_user, "/usr/sbin/asterisk", "-C",
                                    self.conf_inner, *args)

    def _server_kwargs(self) -> dict[str, Any]:
        """Popen arguments for server_argv: umask 077; for a host install, the user."""
        kwargs: dict[str, Any] = {"umask": PBX_UMASK}
        if self.pbx_user is not None and not self.root.chrooted:
            kwargs.update(user=self.pbx_uid, group=self.pbx_gid, extra_groups=[])
        return kwargs

    def exec_foreground(self) -> None:
        """Render, then become Asterisk in the foreground (containers, service managers)."""
        self.render()
        argv = self.server_argv("-f", "-n")
        os.umask(PBX_UMASK)
        if self.pbx_user is not None and not self.root.chrooted:
            os.setgroups([])
            os.setgid(self.pbx_gid)
            os.setuid(self.pbx_uid)
        os.execvp(argv[0], argv)

    def pid(self) -> int | None:
        raw = safefs.read_small(self.host_dir, "run/asterisk.pid", 32)
        try:
            pid = int((raw or b"").strip())
        except ValueError:
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
            safefs.unlink(self.host_dir, f"run/{stale}")
        out = safefs.open_append(self.host_dir, "log/startup.log", self._owner())
        try:
            code = subprocess.call(self.server_argv("-n"), stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=out, timeout=60, **self._server_kwargs())
        finally:
            os.close(out)
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
                if _exited(pid):
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
                if self.settings.trunks_file is not None:
                    info["trunks"] = self.trunk_status()
            except (PbxError, subprocess.TimeoutExpired) as exc:
                info["error"] = str(exc)
        return info

    def trunk_status(self) -> list[dict[str, object]]:
        """Each trunk of the trunks file: transport, and its registration's state (a trunk
        that registers and is not Registered is `ok: false`)."""
        from ivr.trunks.status import registrations

        config = self.trunks()
        regs = registrations(self.cli("pjsip show registrations"))
        out: list[dict[str, object]] = []
        for trunk in config.trunks if config else ():
            row: dict[str, object] = {"name": trunk.name, "transport": trunk.transport.value,
                                      "ok": True}
            if trunk.register is not None:
                reg = regs.get(trunk.name, {"state": "Unknown", "expires_in": None})
                row["registration"] = reg
                row["ok"] = reg["state"] == "Registered"
            out.append(row)
        return out


def _traversable_parents(folder: Path) -> None:
    """`folder` and its missing parents made 0755, whatever the umask (an `ivr` command
    runs with 077, and the PBX user must pass through them to its instance folder); the
    instances' own parent repaired if an earlier version made it closed."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for level in reversed(missing):
        with contextlib.suppress(FileExistsError):
            level.mkdir()
        os.chmod(level, 0o755)
    st = folder.stat()
    if st.st_uid == os.geteuid() and st.st_mode & 0o055 != 0o055:
        os.chmod(folder, 0o755)


def _exited(pid: int) -> bool:
    """The process is gone or a zombie: its sockets are closed.

    Not pid(): Asterisk removes its pid file, and an exiting process's cmdline reads
    empty, before the kernel closes its files, so a start right after could still find
    the SIP port taken (seen beside two CPU hogs)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state follows the command's closing parenthesis (the command may hold spaces).
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
