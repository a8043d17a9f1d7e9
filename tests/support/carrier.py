"""A second Asterisk playing the practice's carrier, for the SIP edge's tests.

It listens on 127.0.0.8 (ports from carrier_base()), requires digest authentication for
the answering service's registration and for its outbound calls (account ACCOUNT), talks
TLS with certificates made for the test run and SRTP (SDES) to the service, forwards the
calls SIPp callers and reacting callers place to it (UDP, from 127.0.0.1) with a
Diversion header naming the practice's forwarded number, and delivers the service's
clinician calls to phones on 127.0.0.1:phones_port. Each leg to or from the service
reports its security as a UserEvent (CarrierLeg: Secure = SRTP in use, Tls = TLS,
Direction = to-service or from-service, CallerID = the calling party's number).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ivr import config
from ivr.caller.client import CallReport, RunningCall, start_call
from ivr.caller.plan import CallPlan
from ivr.pbx.instance import PbxInstance
from ivr.pbx.root import AsteriskRoot
from support.ports import worker_ports
from support.recorder import EventRecorder
from support.stack import REPO, Stack, own_stack

CARRIER_HOST = "127.0.0.8"
# SIP and media 13000-13599, apart from the workers' RTP ranges (tests/support/ports.py):
# 20 SIP/AMI/AGI ports a worker from 13000, 40 RTP ports a worker from 13200.
CARRIER_PORTS = 13000
ACCOUNT = "acct1234"
PASSWORD_ENV = "IVR_TEST_CARRIER_PASSWORD"
FORWARDED = "+16175550111"  # sunny-pediatrics' own number, forwarded after hours
FAX_LINE = "+16175550188"  # the practice's fax machine, reached through the carrier


def carrier_base() -> int:
    """20 ports on 127.0.0.8 for this test process (its xdist worker and run offset):
    several workers run carrier tests at once."""
    return CARRIER_PORTS + 20 * (worker_ports().worker % 10)


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
    b = carrier_base()
    rtp = CARRIER_PORTS + 200 + 40 * ((b - CARRIER_PORTS) // 20)  # the worker's 40
    return config.Settings(
        instance=name, sip_host=CARRIER_HOST, sip_port=b, ami_host=CARRIER_HOST,
        ami_port=b + 1, agi_host=CARRIER_HOST, agi_port=b + 2, web_port=b + 3,
        gateway_port=b + 4, rtp_start=rtp, rtp_end=rtp + 39, data_dir=workdir / name,
        cache_dir=config.Settings().cache_dir).validate()


class Carrier(PbxInstance):
    """The carrier: its own pjsip.conf and dialplan over the project's other configs."""

    password = "carrier-pass-0"
    phones_port = 0  # where it delivers the service's calls (127.0.0.1)
    pki: Pki | None = None
    t38 = False  # the account's calls may switch to T.38 (the carrier asks for it)
    media = "sdes"  # how the account's media is keyed: sdes, or dtls (DTLS-SRTP)

    @property
    def inbox(self) -> Path:
        """Where the fax line's ReceiveFAX writes (as the carrier's Asterisk user)."""
        return self.spool_dir / "fax-in"

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
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.give_to_pbx(self.inbox)
        t38 = "yes" if self.t38 else "no"
        dtls = ("dtls_auto_generate_cert = yes\ndtls_verify = fingerprint\n"
                "dtls_setup = actpass\n" if self.media == "dtls" else "")
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
media_encryption = {self.media}
media_encryption_optimistic = no
{dtls}rewrite_contact = yes
send_diversion = yes
trust_id_inbound = yes
t38_udptl = {t38}
t38_udptl_ec = redundancy

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
 same => n,Dial(PJSIP/${{EXTEN}}@{ACCOUNT},60,U(carrier-leg^to-service))
 same => n,Hangup()

[carrier-from-service]
; The fax line: a fax machine that answers at once (audio fax, or T.38 when both ends
; have it); the result is reported as CarrierFax (Mode: AUDIO or T38).
exten => {FAX_LINE},1,Answer()
 same => n,Gosub(carrier-leg,s,1(from-service))
 same => n,Set(CHANNEL(hangup_handler_push)=carrier-fax-done,s,1)
 same => n,Set(FAXFILE={self.inner_path(self.inbox)}/${{UNIQUEID}}.tif)
 same => n,ReceiveFAX(${{FAXFILE}},f)
 same => n,Hangup()
; Early media (183 with the SDP answer) first, so the leg's SRTP is set up when it is
; reported; the call itself is answered only when the phone answers, as a carrier does.
exten => _X.,1,Progress()
 same => n,Gosub(carrier-leg,s,1(from-service))
 same => n,Dial(PJSIP/${{EXTEN}}@pstn,60)
 same => n,Hangup()

[carrier-fax-done]
exten => s,1,UserEvent(CarrierFax,Status: ${{FAXSTATUS}},Pages: ${{FAXPAGES}},\
Mode: ${{FAXMODE}},Codec: ${{CHANNEL(audionativeformat)}},File: ${{UNIQUEID}}.tif)
 same => n,Return()

[carrier-leg]
; ARG1: to-service (the callee of a forwarded call: the caller is its connected line)
; or from-service (the service calling out: the caller ID it sent).
exten => s,1,Set(WHO=${{IF($["${{ARG1}}" = "to-service"]?${{CONNECTEDLINE(num)}}:\
${{CALLERID(num)}})}})
 same => n,UserEvent(CarrierLeg,Secure: ${{CHANNEL(rtp,secure)}},\
Tls: ${{CHANNEL(pjsip,secure)}},Endpoint: ${{CHANNEL(endpoint)}},Direction: ${{ARG1}},\
CallerID: ${{FILTER(0-9+,${{WHO}})}})
 same => n,Return()
""")


def start_carrier(root: AsteriskRoot, workdir: Path, phones_port: int,
                  t38: bool = False, media: str = "sdes") -> Carrier:
    name = f"carrier{os.getpid()}"
    carrier = Carrier(carrier_settings(name, workdir), root)
    carrier.phones_port, carrier.t38, carrier.media = phones_port, t38, media
    carrier.pki = make_pki(root.host_path(Path(f"/var/lib/ivr-pbx/{name}-pki")),
                           carrier.pbx_owner())
    carrier.start()
    return carrier


def remove(carrier: Carrier) -> None:
    carrier.stop()
    shutil.rmtree(carrier.host_dir, ignore_errors=True)
    if carrier.pki is not None:
        shutil.rmtree(carrier.pki.ca.parent, ignore_errors=True)


def trunks_yaml(carrier: Carrier, service_tls_port: int, *, retry: int = 5,
                fax: str | None = None) -> str:
    """The service's trunks file for this carrier (paths as Asterisk sees them); `fax`:
    the carrier carries the faxes too, in this mode."""
    pki = carrier.pki
    assert pki is not None
    fax_mode = f"    fax: {fax}\n" if fax else ""
    fax_role = "  fax: carrier\n" if fax else ""
    return f"""trunks:
  - name: carrier
    host: {CARRIER_HOST}
    port: {carrier.tls_port}
    transport: tls
    media_encryption: {carrier.media}
    inbound:
      register: {{expiration: 120, retry_seconds: {retry}, forbidden_retry_seconds: 30}}
    auth:
      username: {ACCOUNT}
      password_env: {PASSWORD_ENV}
    from_user: {ACCOUNT}
    send_pai: true
    max_calls: 20
    qualify_seconds: 0
{fax_mode}roles:
  clinicians: carrier
{fax_role}tls:
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


@contextmanager
def edge_stack(prefix: str, fax: str | None = None, media: str = "sdes") -> Iterator[Stack]:
    """A PBX and controller whose trunks file names the carrier, and the carrier itself
    (started, delivering to phones on the stack's gateway port): `stack.carrier`, its AMI
    events in `stack.carrier_events`. `fax`: the carrier is the fax trunk too, in this
    mode (g711, t38); `media`: the trunk's media encryption (sdes, dtls)."""
    with own_stack(prefix) as s:
        os.environ[PASSWORD_ENV] = Carrier.password
        carrier = start_carrier(s.pbx.root, s.workdir, phones_port=s.settings.gateway_port,
                                t38=fax == "t38", media=media)
        try:
            trunks = s.workdir / "trunks.yaml"
            trunks.write_text(trunks_yaml(carrier, s.ports.next(), fax=fax))
            # The controller's metrics endpoint too: the registration gauge is read there.
            s.settings = s.settings.with_overrides(trunks_file=trunks,
                                                   controller_metrics_port=s.ports.next())
            s.pbx = PbxInstance(s.settings, s.pbx.root)
            s.extra_env = {PASSWORD_ENV: Carrier.password}
            s.start_pbx()
            s.carrier = carrier  # type: ignore[attr-defined]
            s.carrier_events = EventRecorder(  # type: ignore[attr-defined]
                carrier.settings, carrier.ami_secret).start()
            s.start_controller()
            yield s
        finally:
            s.stop_controller()
            if getattr(s, "carrier_events", None):
                s.carrier_events.stop()  # type: ignore[attr-defined]
            remove(carrier)


def pbx_status(stack: Stack) -> dict:
    out = subprocess.run([sys.executable, "-m", "ivr.cli", "pbx", "status", "--json"],
                         env=stack.env, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def registered(stack: Stack) -> bool:
    """Every trunk of the service shows as registered (`ivr pbx status`)."""
    trunks = pbx_status(stack).get("trunks") or []
    return bool(trunks) and all(t["ok"] for t in trunks)


def carrier_legs(stack: Stack, after: int = 0) -> list[dict]:
    """The carrier's CarrierLeg events since its recorder's mark `after`."""
    events = stack.carrier_events  # type: ignore[attr-defined]
    with events._lock:
        seen = list(events.events[after:])
    return [e for e in seen if e.get("UserEvent") == "CarrierLeg"]


def call_in(stack: Stack, plan: CallPlan, number: str, workdir: Path,
            timeout_s: float = 300) -> RunningCall:
    """A reacting caller on the public network dialling `number` at the carrier, which
    forwards it to the service (in the background)."""
    carrier = stack.carrier  # type: ignore[attr-defined]
    return start_call(plan, f"{CARRIER_HOST}:{carrier.settings.sip_port}", number,
                      workdir=workdir, port=stack.ports.next(), media_port=stack.ports.next(4),
                      media_ports=4, timeout_s=timeout_s)


def place_in(stack: Stack, plan: CallPlan, number: str, workdir: Path,
             timeout_s: float = 120) -> CallReport:
    """`call_in` to the call's end."""
    return call_in(stack, plan, number, workdir, timeout_s).wait()


def originate(stack: Stack, channel: str) -> None:
    """An AMI Originate as the controller's dialler does (Async; Wait on our side), with
    the practice's caller ID."""
    import asyncio

    from ivr.ami import AmiClient
    from ivr.pbx.instance import AMI_USER

    async def go() -> None:
        ami = AmiClient(stack.settings.ami_host, stack.settings.ami_port, AMI_USER,
                        stack.pbx.ami_secret)
        await ami.connect()
        try:
            await ami.originate({"Channel": channel, "Application": "Wait", "Data": "4",
                                 "CallerID": '"Sunny Pediatrics" <+16175550111>'})
        finally:
            await ami.close()

    asyncio.run(go())
