"""What a trunks file says, once validated: plain frozen dataclasses, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Transport(StrEnum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"


class MediaEncryption(StrEnum):
    NONE = "none"
    SDES = "sdes"  # SRTP keys in the SDP: only over TLS, where the SDP itself is private
    DTLS = "dtls"


class FaxMode(StrEnum):
    G711 = "g711"
    T38 = "t38"


#: Codecs a trunk may offer (loaded in modules.conf); the answering service's prompts are
#: 8 kHz, so nothing wider is of use.
CODECS = ("ulaw", "alaw", "gsm")
DTMF_MODES = ("rfc4733", "inband", "info", "auto")
#: Roles a trunk can carry; `callbacks` rides on the clinician's own call (the clinician
#: presses 1 and the patient is dialled from that call), so it names the clinician trunk.
ROLES = ("clinicians", "callbacks", "fax")


@dataclass(frozen=True)
class Secret:
    """Where a password is read at render time: an environment variable or a file."""

    env: str | None = None
    file: str | None = None

    def where(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"


@dataclass(frozen=True)
class Auth:
    username: str
    password: Secret
    realm: str | None = None


@dataclass(frozen=True)
class Registration:
    expiration: int = 600
    retry_seconds: int = 30
    #: After a 403 (wrong password), try again this much later instead of hammering.
    forbidden_retry_seconds: int = 300
    contact_user: str | None = None


@dataclass(frozen=True)
class Trunk:
    name: str
    host: str
    port: int
    transport: Transport
    media_encryption: MediaEncryption
    codecs: tuple[str, ...] = ("ulaw", "alaw")
    dtmf: str = "rfc4733"
    match: tuple[str, ...] = ()  # the carrier's addresses and networks, for inbound calls
    register: Registration | None = None
    auth: Auth | None = None  # our credentials at the carrier (registration, outbound)
    from_user: str | None = None
    from_domain: str | None = None
    #: "practice": each practice's own number (the dialler's caller ID); else one E.164.
    caller_id: str = "practice"
    send_pai: bool = False
    fax: FaxMode = FaxMode.G711
    nat: bool = False  # the carrier or we are behind NAT: symmetric RTP, rport, contact
    max_calls: int = 30
    qualify_seconds: int = 60


@dataclass(frozen=True)
class Tls:
    port: int = 5061
    cert_file: str | None = None  # our certificate, for carriers that connect to us
    key_file: str | None = None
    ca_file: str = "/etc/ssl/certs/ca-certificates.crt"
    verify_server: bool = True  # the carrier's certificate, when we connect
    verify_client: bool = False


@dataclass(frozen=True)
class Nat:
    external_signaling_address: str | None = None
    external_media_address: str | None = None
    local_net: tuple[str, ...] = ()


@dataclass(frozen=True)
class Guard:
    """When a source is banned (ivr/edge): failures or requests within a window."""

    failures: int = 5
    requests: int = 60
    window_seconds: int = 60
    ban_seconds: int = 3600
    max_calls_per_source: int = 10
    never_ban: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrunksConfig:
    trunks: tuple[Trunk, ...]
    roles: dict[str, str]
    tls: Tls | None = None
    nat: Nat = field(default_factory=Nat)
    guard: Guard = field(default_factory=Guard)
    source_file: str = ""

    def trunk(self, name: str) -> Trunk:
        return next(t for t in self.trunks if t.name == name)

    def role(self, role: str) -> Trunk | None:
        name = self.roles.get(role)
        return self.trunk(name) if name else None
