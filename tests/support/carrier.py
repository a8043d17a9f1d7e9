"""A second Asterisk playing the practice's carrier, for the SIP edge's tests.

It listens on 127.0.0.8 (ports from CARRIER_BASE), requires digest authentication for
the answering service's registration and for its outbound calls (account ACCOUNT), talks
TLS with certificates made for the test run and SRTP (SDES) to the service, forwards the
calls SIPp callers and reacting callers place to it (UDP, from 127.0.0.1) with a
Diversion header naming the practice's forwarded number, and delivers the service's
clinician calls to phones on 127.0.0.1:phones_port. Each leg to or from the service
reports its security as a UserEvent (CarrierLeg: Secure = SRTP in use, Tls = TLS).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ivr import config
from ivr.pbx.instance import PbxInstance
from ivr.pbx.root import AsteriskRoot

CARRIER_HOST = "127.0.0.8"
CARRIER_BASE = 28000 + 20 * (int(os.environ.get("IVR_TEST_WORKER_OFFSET", "0") or 0) % 10)
ACCOUNT = "acct1234"
PASSWORD_ENV = "IVR_TEST_CARRIER_PASSWORD"
FORWARDED = "+16175550111"  # sunny-pediatrics' own number, forwarded after hours


@dataclass(frozen=True)
class Pki:
    """A test CA and two leaf certificates (the carrier's and the service's)."""

    ca: Path
    carrier_cert: Path
    carrier_key: Path
    service_cert: Path
    service_key: Path


def make_pki(folder: Path, owner: tuple[int, int] | None) -> Pki:
    """Generate a CA and leaves for 127.0.0.8 (carrier) and 127.0.0.1 (service)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("ivr test carrier CA"))
          .issuer_name(name("ivr test carrier CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, ip: str) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1))
                .not_valid_after(now + dt.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName(cn), x509.IPAddress(ipaddress.ip_address(ip))]),
                    critical=False)
                .sign(ca_key, hashes.SHA256()))
        return (cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))

    files = {"ca.pem": ca.public_bytes(serialization.Encoding.PEM)}
    files["carrier.pem"], files["carrier.key"] = leaf("carrier.test", CARRIER_HOST)
    files["service.pem"], files["service.key"] = leaf("service.test", "127.0.0.1")
    for file, data in files.items():
        path = folder / file
        path.write_bytes(data)
        path.chmod(0o600)
        if owner is not None:
            os.chown(path, *owner)
    if owner is not None:
        os.chown(folder, *owner)
    folder.chmod(0o700)
    return Pki(folder / "ca.pem", folder / "carrier.pem", folder / "carrier.key",
               folder / "service.pem", folder / "service.key")


def carrier_settings(name: str, workdir: Path) -> config.Settings:
    b = CARRIER_BASE
    return config.Settings(
        instance=name, sip_host=CARRIER_HOST, sip_port=b, ami_host=CARRIER_HOST,
        ami_port=b + 1, agi_host=CARRIER_HOST, agi_port=b + 2, web_port=b + 3,
        gateway_port=b + 4, rtp_start=28200 + 40 * (b % 1000 // 20),
        rtp_end=28200 + 40 * (b % 1000 // 20) + 39, data_dir=workdir / name,
        cache_dir=config.Settings().cache_dir).validate()


class Carrier(PbxInstance):
    """The carrier: its own pjsip.conf and dialplan over the project's other configs."""

    password = "carrier-pass-0"
    phones_port = 0  # where it delivers the service's calls (127.0.0.1)
    pki: Pki | None = None

    @property
    def tls_port(self) -> int:
        return self.settings.sip_port + 5

    def pki_inner(self, path: Path) -> str:
        return str(Path("/") / path.relative_to(self.root.path))

    def render(self) -> None:
        super().render()
        assert self.pki is not None
        etc = self.host_dir / "etc"
        s = self.settings
        modules = (etc / "modules.conf").read_text().replace(
            "noload => res_pjsip_endpoint_identifier_user.so",
            "load => res_pjsip_endpoint_identifier_user.so")
        modules += ("load => res_pjsip_registrar.so\nload => res_pjsip_header_funcs.so\n"
                    "load => res_pjsip_pubsub.so\n")
        (etc / "modules.conf").write_text(modules)
        pki = self.pki
        (etc / "pjsip.conf").write_text(f"""
[global]
type = global
endpoint_identifier_order = username,ip
default_realm = carrier.test

[transport-udp]
type = transport
protocol = udp
bind = {s.sip_host}:{s.sip_port}

[transport-tls]
type = transport
protocol = tls
bind = {s.sip_host}:{self.tls_port}
cert_file = {self.pki_inner(pki.carrier_cert)}
priv_key_file = {self.pki_inner(pki.carrier_key)}
ca_list_file = {self.pki_inner(pki.ca)}
method = tlsv1_2

; The answering service, the carrier's customer: digest for REGISTER and INVITE.
[{ACCOUNT}]
type = endpoint
transport = transport-tls
context = carrier-from-service
auth = {ACCOUNT}-auth
aors = {ACCOUNT}
disallow = all
allow = ulaw,alaw
direct_media = no
media_encryption = sdes
media_encryption_optimistic = no
rewrite_contact = yes
send_diversion = yes
trust_id_inbound = yes

[{ACCOUNT}-auth]
type = auth
auth_type = userpass
username = {ACCOUNT}
password = {self.password}

[{ACCOUNT}]
type = aor
max_contacts = 1
remove_existing = yes

; The public network: callers from 127.0.0.1, phones at 127.0.0.1:{self.phones_port}.
[pstn]
type = endpoint
transport = transport-udp
context = carrier-from-pstn
disallow = all
allow = ulaw,alaw
direct_media = no
aors = pstn
rtp_symmetric = yes

[pstn]
type = aor
contact = sip:127.0.0.1:{self.phones_port}

[pstn-identify]
type = identify
endpoint = pstn
match = 127.0.0.1
""")
        with open(etc / "extensions.conf", "a") as out:
            out.write(f"""
[carrier-from-pstn]
; A forwarded call: the practice's own number forwarded to the service.
exten => _+X.,1,Set(REDIRECTING(from-num,i)={FORWARDED})
 same => n,Set(REDIRECTING(reason,i)=unconditional)
 same => n,Set(REDIRECTING(count,i)=1)
 same => n,Dial(PJSIP/${{EXTEN}}@{ACCOUNT},60,U(carrier-leg))
 same => n,Hangup()

[carrier-from-service]
; Answered first, so the leg's SRTP is set up when it is reported.
exten => _X.,1,Answer()
 same => n,Gosub(carrier-leg,s,1)
 same => n,Dial(PJSIP/${{EXTEN}}@pstn,60)
 same => n,Hangup()

[carrier-leg]
exten => s,1,UserEvent(CarrierLeg,Secure: ${{CHANNEL(rtp,secure)}},\
Tls: ${{CHANNEL(pjsip,secure)}},Endpoint: ${{CHANNEL(endpoint)}})
 same => n,Return()
""")


def start_carrier(root: AsteriskRoot, workdir: Path, phones_port: int) -> Carrier:
    name = f"carrier{os.getpid()}"
    carrier = Carrier(carrier_settings(name, workdir), root)
    carrier.phones_port = phones_port
    carrier.pki = make_pki(root.host_path(Path(f"/var/lib/ivr-pbx/{name}-pki")),
                           carrier.pbx_owner())
    carrier.start()
    return carrier


def remove(carrier: Carrier) -> None:
    carrier.stop()
    shutil.rmtree(carrier.host_dir, ignore_errors=True)
    if carrier.pki is not None:
        shutil.rmtree(carrier.pki.ca.parent, ignore_errors=True)


def trunks_yaml(carrier: Carrier, service_tls_port: int, *, retry: int = 5) -> str:
    """The service's trunks file for this carrier (paths as Asterisk sees them)."""
    pki = carrier.pki
    assert pki is not None
    return f"""trunks:
  - name: carrier
    host: {CARRIER_HOST}
    port: {carrier.tls_port}
    transport: tls
    media_encryption: sdes
    inbound:
      register: {{expiration: 120, retry_seconds: {retry}, forbidden_retry_seconds: 30}}
    auth:
      username: {ACCOUNT}
      password_env: {PASSWORD_ENV}
    from_user: {ACCOUNT}
    send_pai: true
    max_calls: 20
    qualify_seconds: 0
roles:
  clinicians: carrier
tls:
  port: {service_tls_port}
  cert_file: {carrier.pki_inner(pki.service_cert)}
  key_file: {carrier.pki_inner(pki.service_key)}
  ca_file: {carrier.pki_inner(pki.ca)}
  verify_server: true
guard:
  failures: 3
  window_seconds: 60
  ban_seconds: 600
  max_calls_per_source: 20
"""
