"""TrunksConfig -> PJSIP sections (the text that fills pjsip.conf's {{trunk_sections}}).

Every value comes from a validated TrunksConfig, and each line is checked once more here
(`_line`): a value that could end the line, start a comment or name another option never
reaches Asterisk. Passwords are read from their environment variable or file only now,
at render time, and are written into the 0600 PBX-owned pjsip.conf, nowhere else.

Role endpoints keep the names the dialplan and the controller dial (contract.py):
`clinician-gateway` is the clinician trunk's way out, `fax-trunk` the fax trunk's; each
shares its trunk's AOR (address), credentials, transport and media encryption, and has
no identify section, so nothing arriving is taken for it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from ivr import contract
from ivr.trunks import model as m

#: What a value may hold: no space, no newline, and ';' only escaped ('\;', URI parameters).
_SAFE = re.compile(r"^(?:[A-Za-z0-9_.:/@+=,\-\[\]]|\\;){1,400}$")
#: Printable ASCII without spaces; ';' is escaped (it starts a comment in Asterisk configs).
_PASSWORD = re.compile(r"^[\x21-\x7e]{1,128}$")
MAX_SECRET_BYTES = 4096
FAX_ENDPOINT = "fax-trunk"


class TrunkRenderError(ValueError):
    """A trunk cannot be rendered: a credential is missing or unusable (named, not shown)."""


def read_secret(trunk: str, secret: m.Secret, env: Mapping[str, str]) -> str:
    """The password a Secret points at; the error names where it was looked for."""
    if secret.env:
        value = env.get(secret.env, "")
    else:
        assert secret.file
        try:
            with open(secret.file, "rb") as handle:
                value = handle.read(MAX_SECRET_BYTES).decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise TrunkRenderError(f"trunk {trunk}: cannot read the password file "
                                   f"{secret.file} ({type(exc).__name__})") from None
    if not value:
        raise TrunkRenderError(f"trunk {trunk}: no password in the {secret.where()}")
    if not _PASSWORD.match(value):
        raise TrunkRenderError(f"trunk {trunk}: the password in the {secret.where()} must be "
                               "1-128 printable ASCII characters without spaces")
    return value


def _line(key: str, value: str) -> str:
    if not _SAFE.match(value):
        raise TrunkRenderError(f"refusing to render {key} = {value[:40]!r}")
    return f"{key} = {value}"


def _section(name: str, kind: str, options: list[tuple[str, str]]) -> str:
    lines = [f"[{name}]", _line("type", kind)]
    lines += [_line(k, v) for k, v in options]
    return "\n".join(lines) + "\n"


def transport_name(transport: m.Transport) -> str:
    return f"transport-{transport.value}"


def transports(config: m.TrunksConfig, host: str, udp_port: int) -> str:
    """Extra transports the trunks need (UDP is always there, in pjsip.conf itself)."""
    used = {t.transport for t in config.trunks}
    nat = _nat_options(config.nat)
    out = []
    if m.Transport.TCP in used:
        out.append(_section("transport-tcp", "transport",
                            [("protocol", "tcp"), ("bind", f"{host}:{udp_port}"), *nat]))
    if m.Transport.TLS in used and config.tls is not None:
        tls = config.tls
        options = [("protocol", "tls"), ("bind", f"{host}:{tls.port}"),
                   ("method", "tlsv1_2"), ("ca_list_file", tls.ca_file),
                   ("verify_server", "yes" if tls.verify_server else "no"),
                   ("verify_client", "yes" if tls.verify_client else "no"),
                   ("require_client_cert", "yes" if tls.verify_client else "no")]
        if tls.cert_file and tls.key_file:
            options += [("cert_file", tls.cert_file), ("priv_key_file", tls.key_file)]
        out.append(_section("transport-tls", "transport", options + nat))
    return "\n".join(out)


def _nat_options(nat: m.Nat) -> list[tuple[str, str]]:
    out = []
    if nat.external_signaling_address:
        out.append(("external_signaling_address", nat.external_signaling_address))
    if nat.external_media_address:
        out.append(("external_media_address", nat.external_media_address))
    out += [("local_net", net) for net in nat.local_net]
    return out


def udp_nat_lines(config: m.TrunksConfig | None) -> str:
    """NAT options for the UDP transport (empty without a trunks file)."""
    if config is None:
        return ""
    return "\n".join(_line(k, v) for k, v in _nat_options(config.nat))


def _uri(trunk: m.Trunk, user: str | None = None) -> str:
    at = f"{user}@" if user else ""
    # ';' escaped: unescaped, it would start a comment in pjsip.conf.
    return f"sip:{at}{trunk.host}:{trunk.port}\\;transport={trunk.transport.value}"


def _media(trunk: m.Trunk) -> list[tuple[str, str]]:
    out = [("disallow", "all"), ("allow", ",".join(trunk.codecs)),
           ("direct_media", "no"), ("rtp_symmetric", "yes" if trunk.nat else "no"),
           ("force_rport", "yes" if trunk.nat else "no"),
           ("rewrite_contact", "yes" if trunk.nat else "no")]
    if trunk.media_encryption is m.MediaEncryption.SDES:
        out += [("media_encryption", "sdes"), ("media_encryption_optimistic", "no")]
    elif trunk.media_encryption is m.MediaEncryption.DTLS:
        out += [("media_encryption", "dtls"), ("dtls_auto_generate_cert", "yes"),
                ("dtls_verify", "fingerprint"), ("dtls_setup", "actpass"),
                ("media_encryption_optimistic", "no")]
    return out


def _endpoint(trunk: m.Trunk, context: str, extra: list[tuple[str, str]]) -> list[
        tuple[str, str]]:
    out = [("transport", transport_name(trunk.transport)), ("context", context),
           *_media(trunk), ("aors", trunk.name),
           ("trust_id_inbound", "no"), ("trust_id_outbound", "no"),
           ("allow_subscribe", "no"), ("send_diversion", "no"), *extra]
    if trunk.auth is not None:
        out.append(("outbound_auth", f"{trunk.name}-auth"))
    if trunk.from_user:
        out.append(("from_user", trunk.from_user))
    if trunk.from_domain:
        out.append(("from_domain", trunk.from_domain))
    if trunk.send_pai:
        out.append(("send_pai", "yes"))
    if trunk.caller_id != "practice":
        out.append(("callerid", trunk.caller_id))
    return out


def trunk_sections(trunk: m.Trunk, env: Mapping[str, str]) -> str:
    parts = []
    if trunk.auth is not None:
        password = read_secret(trunk.name, trunk.auth.password, env)
        auth = [("auth_type", "userpass"), ("username", trunk.auth.username)]
        if trunk.auth.realm:
            auth.append(("realm", trunk.auth.realm))
        text = _section(f"{trunk.name}-auth", "auth", auth)
        # Written as is, ';' escaped: _line's character set is for everything else.
        parts.append(text + "password = " + password.replace(";", r"\;") + "\n")
    aor = [("contact", _uri(trunk))]
    if trunk.qualify_seconds:
        aor.append(("qualify_frequency", str(trunk.qualify_seconds)))
    parts.append(_section(trunk.name, "aor", aor))
    # IVR_MAX_CALLS: the dialplan's cap on this trunk's concurrent calls ([ivr-caps]).
    parts.append(_section(trunk.name, "endpoint", _endpoint(
        trunk, contract.CTX_INBOUND, [("dtmf_mode", trunk.dtmf),
                                      ("set_var", f"IVR_MAX_CALLS={trunk.max_calls}")])))
    if trunk.match:
        parts.append(_section(f"{trunk.name}-identify", "identify",
                              [("endpoint", trunk.name), ("match", ",".join(trunk.match))]))
    if trunk.register is not None and trunk.auth is not None:
        reg = trunk.register
        contact_user = reg.contact_user or trunk.auth.username
        parts.append(_section(f"{trunk.name}-reg", "registration", [
            ("transport", transport_name(trunk.transport)),
            ("outbound_auth", f"{trunk.name}-auth"),
            ("server_uri", _uri(trunk)),
            ("client_uri", _uri(trunk, trunk.auth.username)),
            ("contact_user", contact_user),
            ("expiration", str(reg.expiration)),
            ("retry_interval", str(reg.retry_seconds)),
            ("forbidden_retry_interval", str(reg.forbidden_retry_seconds)),
            ("fatal_retry_interval", str(reg.forbidden_retry_seconds)),
            ("max_retries", "100000"),
            ("auth_rejection_permanent", "no"),
            # Calls the carrier sends to this registration carry ;line=, which names the
            # endpoint: no need to trust the carrier's addresses.
            ("line", "yes"), ("endpoint", trunk.name)]))
    return "\n".join(parts)


def role_sections(config: m.TrunksConfig) -> str:
    """The endpoints the dialplan dials: clinicians (and call-backs), and fax."""
    clinicians = config.role("clinicians")
    assert clinicians is not None, "validated: roles.clinicians names a trunk"
    parts = [_section(contract.ENDPOINT_GATEWAY, "endpoint", _endpoint(
        clinicians, contract.CTX_GATEWAY_IN, [("dtmf_mode", clinicians.dtmf)]))]
    fax = config.role("fax")
    if fax is not None:
        options = _endpoint(fax, "ivr-fax-in", [])
        options = [(k, "ulaw,alaw" if k == "allow" else v) for k, v in options]
        options.append(("t38_udptl", "yes" if fax.fax is m.FaxMode.T38 else "no"))
        if fax.fax is m.FaxMode.T38:
            # IVR_FAX_T38: the dialplan's SendFAX may then switch to T.38 ([ivr-fax-out]).
            options += [("t38_udptl_ec", "redundancy"), ("fax_detect", "no"),
                        ("set_var", "IVR_FAX_T38=1")]
        parts.append(_section(FAX_ENDPOINT, "endpoint", options))
    return "\n".join(parts)


def render_trunks(config: m.TrunksConfig, host: str, udp_port: int,
                  env: Mapping[str, str] | None = None) -> str:
    """Everything after the UDP transport in pjsip.conf, for a trunks file."""
    env = os.environ if env is None else env
    head = f"; Rendered from {Path(config.source_file).name} by ivr/trunks/pjsip.py.\n"
    parts = [head, transports(config, host, udp_port)]
    parts += [trunk_sections(t, env) for t in config.trunks]
    parts.append(role_sections(config))
    return "\n".join(p for p in parts if p)
