"""A PostgreSQL server in a folder of the project: made once (initdb), started, stopped.

Debian's server binaries (/usr/lib/postgresql/<version>/bin, package `postgresql`) run as
the `postgres` system user that package makes when we are root (the server refuses to run
as root), else as ourselves. The server listens on one loopback address and on a Unix
socket inside its own 0700 folder. Logins over TCP need the role's password
(scram-sha-256); it is made at init, kept in a 0600 file beside the data and never
printed: `url()` carries it for the engine, `safe_url()` is what a person may see.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL

from ivr.cluster.accounts import service_user

SERVICE_USER = "postgres"  # made by Debian's postgresql package
PG_LIB = Path("/usr/lib/postgresql")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_CONF = "ivr.conf"  # our settings, rewritten at each start; postgresql.conf includes it


class PostgresError(RuntimeError):
    """The server is missing, did not start or refused a command; the message says where."""


def find_bin(base: Path = PG_LIB) -> Path:
    """The newest installed server's bin folder."""
    found = [p for p in base.glob("*/bin") if (p / "pg_ctl").exists()]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not found:
        raise PostgresError(f"no PostgreSQL server in {base}: apt-get install postgresql")
    return found[-1]


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass
class PostgresServer:
    """One server: its data, socket, log and password file all live in `folder`."""

    folder: Path
    port: int
    host: str = "127.0.0.1"
    role: str = "ivr"
    #: Extra server settings (tests turn fsync off: their data is thrown away).
    tuning: Mapping[str, str] = field(default_factory=dict)
    bin_dir: Path | None = None

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder / "run"

    @property
    def log_file(self) -> Path:
        return self.folder / "log" / "postgres.log"

    @property
    def password_file(self) -> Path:
        return self.folder / "password"

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    # --- who runs it -------------------------------------------------------------------

    def _owner(self) -> pwd.struct_passwd | None:
        return service_user(SERVICE_USER, "postgresql")

    def _give(self, *paths: Path) -> None:
        owner = self._owner()
        if owner is not None:
            for path in paths:
                os.chown(path, owner.pw_uid, owner.pw_gid, follow_symlinks=False)

    def _run(self, program: str, *args: str, timeout: float = 120,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str((self.bin_dir or find_bin()) / program), *args]
        owner = self._owner()
        if owner is not None and program != "psql":
            argv = ["runuser", "-u", owner.pw_name, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              cwd=self.folder, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise PostgresError(f"{program} exited {done.returncode}"
                                + (f": {lines[-1]}" if lines else ""))
        return done

    def _check_reachable(self) -> None:
        owner = self._owner()
        if owner is not None and subprocess.run(
                ["runuser", "-u", owner.pw_name, "--", "test", "-w", str(self.folder)],
                stdin=subprocess.DEVNULL, capture_output=True).returncode != 0:
            raise PostgresError(f"the {owner.pw_name} user cannot reach {self.folder}: every "
                                "folder above it must be searchable by others (o+x)")

    # --- life cycle ----------------------------------------------------------------------

    def init(self) -> bool:
        """Make the cluster once (True when made now); the role's password with it."""
        if (self.data_dir / "PG_VERSION").exists():
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        if not self.password_file.exists():
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24) + "\n")
        for sub in ("run", "log"):
            (self.folder / sub).mkdir(mode=0o700, exist_ok=True)
        self._give(self.folder, self.password_file, self.socket_dir, self.log_file.parent)
        self._check_reachable()
        self._run("initdb", "-D", str(self.data_dir), "-U", self.role, "-E", "UTF8",
                  "--no-locale", f"--pwfile={self.password_file}", "--auth-local=trust",
                  "--auth-host=scram-sha-256")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(f"\ninclude_if_exists = '{_CONF}'\n")
        return True

    def _write_conf(self) -> None:
        values = {"listen_addresses": self.host, "port": str(self.port),
                  "unix_socket_directories": str(self.socket_dir),
                  "unix_socket_permissions": "0700", **self.tuning}
        text = "".join(f"{k} = {v if v.isdigit() else _quote(v)}\n" for k, v in values.items())
        path = self.data_dir / _CONF
        path.write_text("# written by ivr at each start (ivr/cluster/postgres.py)\n" + text)
        os.chmod(path, 0o600)
        self._give(path)

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "-D", str(self.data_dir), "status",
                         check=False).returncode == 0

    def start(self, timeout: int = 60) -> None:
        self.init()
        if self.is_running():
            return
        self._write_conf()
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
                      "-t", str(timeout), "start", timeout=timeout + 10)
        except PostgresError as exc:
            raise PostgresError(f"PostgreSQL did not start ({exc}); see {self.log_file}") \
                from None

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; mode `immediate` is a crash (the drills' database fault)."""
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    # --- using it ----------------------------------------------------------------------

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the role over the private socket; its output, tuples only."""
        return self._run("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                         "-h", str(self.socket_dir), "-p", str(self.port), "-U", self.role,
                         "-d", database, "-c", sql).stdout

    def create_database(self, name: str, template: str = "template0") -> None:
        for value in (name, template):
            if not _NAME.fullmatch(value):
                raise PostgresError(f"database name {value!r}: expected [a-z0-9_], max 63")
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')

    def drop_database(self, name: str) -> None:
        if not _NAME.fullmatch(name):
            raise PostgresError(f"database name {name!r}: expected [a-z0-9_], max 63")
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def url(self, database: str = "ivr") -> str:
        """The engine's URL, password included: for IVR_DB_URL, never for a person."""
        return URL.create("postgresql+asyncpg", username=self.role, password=self.password,
                          host=self.host, port=self.port, database=database
                          ).render_as_string(hide_password=False)

    def safe_url(self, database: str = "ivr") -> str:
        return URL.create("postgresql+asyncpg", username=self.role, host=self.host,
                          port=self.port, database=database).render_as_string()
