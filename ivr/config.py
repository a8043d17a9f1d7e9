"""Runtime settings: ports, folders and addresses, read from IVR_* environment variables."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A setting has a bad value; the message names the variable and the value."""


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "ivr"


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ivr"


def _default_key_file() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "ivr" / "keys.json"


@dataclass(frozen=True)
class Settings:
    """Everything a controller or a PBX instance needs to know about where things are."""

    instance: str = "default"
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    # Where the PBX sends calls for clinicians' phones (an outbound SIP trunk in
    # production, a SIPp phone in tests).
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 5070
    # Source addresses identified as the inbound trunk; nothing else may place calls.
    trunk_match: str = "127.0.0.1"
    rtp_start: int = 20000
    rtp_end: int = 29999
    data_dir: Path = field(default_factory=_default_data_dir)
    cache_dir: Path = field(default_factory=_default_cache_dir)
    rules_path: Path = _REPO / "routing_rules"
    # May carry a password (postgresql+asyncpg://user:password@host/db): kept out of repr.
    db_url: str = field(default="", repr=False)
    # The database password in a file of its own (a container's secret, a cluster's 0600
    # file): put into db_url when the URL is used, so no environment carries it.
    db_password_file: Path | None = None
    # Extra controller addresses the dialplan tries, in order, after agi_host:agi_port.
    agi_backups: tuple[str, ...] = ()
    # Where the PBX sends outgoing faxes (a SIP trunk that carries G.711 fax; in tests a
    # second Asterisk that runs ReceiveFAX).
    fax_host: str = "127.0.0.1"
    fax_port: int = 5080
    # Seconds in one "minute" of the rules' call-back timing (when_exhausted.renotify_
    # minutes). 60 in production; tests set IVR_ONCALL_MINUTE_SECONDS=1 so a whole
    # call-back chain runs in seconds. Nothing else is scaled.
    oncall_minute_seconds: float = 60.0
    # The keyring that seals patient data at rest (ivr.secure.keys): outside the data folder, so
    # a copy of the data holds no key. IVR_KEYS (the file's JSON itself) wins over it.
    key_file: Path = field(default_factory=_default_key_file)
    # Offline transcripts of the name and reason (ivr.transcribe): the engine's name (or
    # "off"), a model folder of the operator's own (default: the one its package ships),
    # and how many worker processes run it (each holds the model in memory).
    transcribe_engine: str = "whisper"
    transcribe_model_path: Path | None = None
    transcribe_workers: int = 1
    # The portal (ivr.web): automatic log-off after this many idle minutes, and after this
    # many hours whatever happens; the address people reach it at (links in notes and
    # reports; https:// there marks cookies Secure behind a TLS proxy); a certificate and
    # key to serve HTTPS itself.
    web_session_idle_minutes: int = 30
    web_session_max_hours: int = 12
    web_public_url: str = ""
    web_tls_cert_file: Path | None = None
    web_tls_key_file: Path | None = None
    # The carrier trunks (ivr/trunks, docs/carrier.md); unset: the single-address trunk
    # (trunk_match) and the gateway above, as before.
    trunks_file: Path | None = None
    # A SIP account for a softphone ("testphone", credentials printed by `ivr run`);
    # off unless IVR_TEST_PHONE=1 (make run turns it on; production leaves it off).
    test_phone: bool = False
    # The controller's own Prometheus endpoint (ivr.controller.metrics): AGI command
    # latency, calls up on this controller, trunk registrations. Off (0) unless a port
    # is given; an operator's API token is needed to read it, as for the portal's.
    controller_metrics_host: str = "127.0.0.1"
    controller_metrics_port: int = 0
    # Degrade, never collapse (docs/performance.md): the controller must take a call
    # within controller_answer_seconds, or the dialplan's own intake does; it sheds new
    # calls to that intake at once beyond admission_max_calls calls in progress or an
    # event loop that lags more than admission_max_lag_ms (0: no limit of that kind).
    controller_answer_seconds: int = 3
    admission_max_calls: int = 120
    admission_max_lag_ms: int = 500
    # IVR_UVLOOP=1: `ivr serve` runs its event loop on uvloop (libuv), cheaper sockets and
    # timers for hundreds of calls. Off by default: with it, a controller that was
    # SIGSTOPped and continued did not stop on SIGTERM within 20 s and the stalled-
    # controller test (tests/e2e/test_overload_intake.py) failed; not understood yet.
    uvloop: bool = False

    @property
    def database_url(self) -> str:
        if self.db_url and self.db_password_file is not None:
            return _with_password(self.db_url, self.db_password_file)
        return self.db_url or f"sqlite+aiosqlite:///{self.data_dir / 'ivr.sqlite3'}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def prompts_cache_dir(self) -> Path:
        return self.data_dir / "prompts"

    def validate(self) -> Settings:
        """Check every value; raise ConfigError naming the IVR_* variable."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", self.instance):
            raise ConfigError(f"IVR_INSTANCE={self.instance!r}: expected [a-z0-9_-], max 40")
        for name in ("sip_host", "ami_host", "agi_host", "web_host", "gateway_host",
                     "controller_metrics_host"):
            value = getattr(self, name)
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ConfigError(f"{_env_name(name)}={value!r}: expected an IP address") from None
        for name in ("sip_port", "ami_port", "agi_port", "web_port", "gateway_port",
                     "rtp_start", "rtp_end"):
            value = getattr(self, name)
            if not 1 <= value <= 65535:
                raise ConfigError(f"{_env_name(name)}={value!r}: expected a port 1-65535")
        if not 0 <= self.controller_metrics_port <= 65535:
            raise ConfigError(f"IVR_CONTROLLER_METRICS_PORT={self.controller_metrics_port!r}: "
                              "expected a port 1-65535, or 0 (off)")
        for part in self.trunk_match.split(","):
            try:
                ipaddress.ip_network(part.strip(), strict=False)
            except ValueError:
                raise ConfigError(
                    f"IVR_TRUNK_MATCH={self.trunk_match!r}: expected IP addresses or networks"
                ) from None
        try:
            ipaddress.ip_address(self.fax_host)
        except ValueError:
            raise ConfigError(f"IVR_FAX_HOST={self.fax_host!r}: expected an IP address") from None
        if not 1 <= self.fax_port <= 65535:
            raise ConfigError(f"IVR_FAX_PORT={self.fax_port!r}: expected a port 1-65535")
        if not 0.1 <= self.oncall_minute_seconds <= 3600:
            raise ConfigError(f"IVR_ONCALL_MINUTE_SECONDS={self.oncall_minute_seconds!r}: "
                              "expected seconds between 0.1 and 3600")
        key, data = self.key_file.expanduser().resolve(), self.data_dir.expanduser().resolve()
        if key == data or key.is_relative_to(data):
            raise ConfigError(f"IVR_KEY_FILE={str(self.key_file)!r}: inside the data folder "
                              f"{str(self.data_dir)!r}; keep the keys elsewhere")
        from ivr.transcribe.registry import ENGINES, OFF

        if self.transcribe_engine not in (*ENGINES, OFF):
            raise ConfigError(f"IVR_TRANSCRIBE_ENGINE={self.transcribe_engine!r}: expected "
                              f"one of {', '.join([*ENGINES, OFF])}")
        if not 1 <= self.transcribe_workers <= 16:
            raise ConfigError(f"IVR_TRANSCRIBE_WORKERS={self.transcribe_workers!r}: expected "
                              "1 to 16 worker processes")
        if not 1 <= self.web_session_idle_minutes <= 1440:
            raise ConfigError(f"IVR_WEB_SESSION_IDLE_MINUTES={self.web_session_idle_minutes!r}: "
                              "expected minutes between 1 and 1440")
        if not 1 <= self.web_session_max_hours <= 168:
            raise ConfigError(f"IVR_WEB_SESSION_MAX_HOURS={self.web_session_max_hours!r}: "
                              "expected hours between 1 and 168")
        if self.web_public_url and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?",
                                                    self.web_public_url):
            raise ConfigError(f"IVR_WEB_PUBLIC_URL={self.web_public_url!r}: expected "
                              "http(s)://host[:port][/path]")
        if (self.web_tls_cert_file is None) != (self.web_tls_key_file is None):
            raise ConfigError("IVR_WEB_TLS_CERT_FILE and IVR_WEB_TLS_KEY_FILE: give both "
                              "(HTTPS) or neither (HTTP)")
        # The file itself is read when the URL is used: it may not exist yet (a cluster's
        # server makes it at its first start).
        if self.db_password_file is not None and not self.db_url:
            raise ConfigError("IVR_DB_PASSWORD_FILE is set but IVR_DB_URL is not: the "
                              "password file needs the database's URL")
        for name, low, high, unit in _LOAD_LIMITS:
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(f"{_env_name(name)}={value!r}: expected {unit} between "
                                  f"{low}{' (no limit)' if low == 0 else ''} and {high}")
        for backup in self.agi_backups:
            if not re.fullmatch(r"[0-9.]+:[0-9]{1,5}", backup):
                raise ConfigError(f"IVR_AGI_BACKUPS: {backup!r}: expected HOST:PORT")
        return self

    def with_overrides(self, **changes: object) -> Settings:
        # Values of mixed types, checked by validate() rather than by the type checker.
        given: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **given).validate()


#: The load settings' ranges: (field, lowest, highest, unit).
_LOAD_LIMITS = (("controller_answer_seconds", 1, 60, "seconds"),
                ("admission_max_calls", 0, 100000, "calls"),
                ("admission_max_lag_ms", 0, 60000, "milliseconds"))


def _with_password(url: str, password_file: Path) -> str:
    """`url` with the password read from `password_file` (its first line); the errors
    name the file, never what is in it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        lines = password_file.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"IVR_DB_PASSWORD_FILE={str(password_file)!r}: "
                          f"{exc.strerror or type(exc).__name__}") from None
    if not lines or not lines[0].strip():
        raise ConfigError(f"IVR_DB_PASSWORD_FILE={str(password_file)!r}: the file is empty")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # their text repeats the URL
        raise ConfigError("IVR_DB_URL: not a database URL such as "
                          "postgresql+asyncpg://user@host:5432/ivr") from None
    return parsed.set(password=lines[0].strip()).render_as_string(hide_password=False)


def _env_name(field_name: str) -> str:
    return "IVR_" + field_name.upper()


def from_env(env: dict[str, str] | None = None) -> Settings:
    """Settings from IVR_* variables (IVR_SIP_PORT, IVR_DATA_DIR, ...), defaults elsewhere."""
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = env.get(_env_name(f.name))
        if raw is None or raw == "":
            continue
        if f.name.endswith("_port") or f.name.startswith("rtp_") or \
                f.name == "transcribe_workers":
            try:
                values[f.name] = int(raw)
            except ValueError:
                what = "a whole number" if f.name == "transcribe_workers" else "a port number"
                raise ConfigError(f"{_env_name(f.name)}={raw!r}: expected {what}") from None
        elif f.name.endswith(("_dir", "_path", "_file")):
            values[f.name] = Path(raw).expanduser()
        elif f.name in ("web_session_idle_minutes", "web_session_max_hours",
                        "controller_answer_seconds", "admission_max_calls",
                        "admission_max_lag_ms"):
            try:
                values[f.name] = int(raw)
            except ValueError:
                raise ConfigError(f"{_env_name(f.name)}={raw!r}: expected a whole number") \
                    from None
        elif f.name == "oncall_minute_seconds":
            try:
                values[f.name] = float(raw)
            except ValueError:
                raise ConfigError(f"{_env_name(f.name)}={raw!r}: expected a number") from None
        elif f.name in ("test_phone", "uvloop"):
            if raw not in ("0", "1"):
                raise ConfigError(f"{_env_name(f.name)}={raw!r}: expected 1 (on) or 0 (off)")
            values[f.name] = raw == "1"
        elif f.name == "agi_backups":
            values[f.name] = tuple(p.strip() for p in raw.split(",") if p.strip())
        else:
            values[f.name] = raw
    return Settings(**values).validate()


def to_env(settings: Settings) -> dict[str, str]:
    """The IVR_* variables that reproduce these settings (for child processes)."""
    out: dict[str, str] = {}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = "1" if value else "0"
        elif value is None:
            value = ""
        out[_env_name(f.name)] = str(value)
    return out
