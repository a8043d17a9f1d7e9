"""trunks.yaml -> TrunksConfig, every error located (file:line:column, key, value).

Reads with the rules' YAML loader and generic accessors (ivr.rules.yamlload and
ivr.rules.validate.core), so a trunks file is held to the same limits and reports in
the same form as a practice file.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from pathlib import Path

import yaml

from ivr.rules import model as rm
from ivr.rules.limits import MAX_DEPTH, InputRefused, read_bounded
from ivr.rules.validate.core import Collector, Reader, child
from ivr.rules.yamlload import TooDeep, check_limits, compose
from ivr.trunks import model as m
from ivr.trunks import shape as s

MAX_TRUNKS_FILE_BYTES = 256 * 1024
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")


class TrunksReader(Reader):
    """One trunks file's node tree; every accessor records errors instead of raising."""

    def build(self, root: yaml.Node) -> m.TrunksConfig | None:
        before = len(self.c.errors)
        top = self.mapping(root, "", s.TOP.keys)
        if top is None:
            return None
        trunks = [self.trunk(n, child("trunks", i))
                  for i, n in enumerate(self.seq(top.get("trunks"), "trunks"))]
        built = [t for t in trunks if t is not None]
        self._unique_names(top.get("trunks"), built)
        tls = self.tls(top["tls"]) if "tls" in top else None
        nat = self.nat(top.get("nat"))
        guard = self.guard(top.get("guard"))
        roles = self.roles(top.get("roles"), {t.name: t for t in built}, tls, top)
        if tls is None and any(t.transport is m.Transport.TLS for t in built):
            self.c.error(root, "tls", None, "a tls section (port, ca_file, ...)",
                         "a trunk uses TLS but there is no tls section")
        if len(self.c.errors) > before:
            return None
        return m.TrunksConfig(tuple(built), roles, tls, nat, guard, source_file=self.c.file)

    # ---- sections ----------------------------------------------------------------------
    def trunk(self, node: yaml.Node, path: str) -> m.Trunk | None:
        f = self.mapping(node, path, s.TRUNK.keys)
        if f is None:
            return None
        at = lambda key: child(path, key)  # noqa: E731 - a short local helper
        name = self.text(f.get("name"), at("name"), "a short name: a-z, 0-9, dashes",
                         s.SLUG_RE)
        host = self.text(f.get("host"), at("host"), "a host name or IP address", s.HOST_RE)
        transport = m.Transport(self.choice(f.get("transport"), at("transport"),
                                            tuple(m.Transport)) or "udp") \
            if "transport" in f else m.Transport.UDP
        port = self.integer(f.get("port"), at("port"), 1, 65535,
                            5061 if transport is m.Transport.TLS else 5060)
        default_enc = "sdes" if transport is m.Transport.TLS else "none"
        enc = m.MediaEncryption(self.choice(f.get("media_encryption"), at("media_encryption"),
                                            tuple(m.MediaEncryption)) or default_enc) \
            if "media_encryption" in f else m.MediaEncryption(default_enc)
        if enc is m.MediaEncryption.SDES and transport is not m.Transport.TLS:
            self.c.error(f["media_encryption"], at("media_encryption"), "sdes",
                         "dtls or none on udp/tcp, or transport tls",
                         "SDES sends the SRTP keys in the SDP: only over TLS")
        codecs = tuple(c for i, n in enumerate(self.seq(f.get("codecs"), at("codecs")))
                       if (c := self.choice(n, child(at("codecs"), i), m.CODECS)))
        dtmf = self.choice(f.get("dtmf"), at("dtmf"), m.DTMF_MODES) if "dtmf" in f else None
        match, register = self.inbound(f.get("inbound"), at("inbound"))
        auth = self.auth(f["auth"], at("auth")) if "auth" in f else None
        if register is not None and auth is None:
            self.c.error(node, at("auth"), None, "auth: {username, password_env}",
                         "a trunk that registers needs credentials")
        from_user = self.text(f.get("from_user"), at("from_user"), "an account or number",
                              s.USER_RE)
        from_domain = self.text(f.get("from_domain"), at("from_domain"), "a host name",
                                s.HOST_RE)
        caller_id = self.text(f.get("caller_id"), at("caller_id"),
                              "practice, or an E.164 number such as +16175550100",
                              re.compile(r"^(practice|\+[1-9][0-9]{6,14})$")) or "practice"
        fax = self.choice(f.get("fax"), at("fax"), tuple(m.FaxMode)) if "fax" in f else None
        if None in (name, host):
            return None
        assert name is not None and host is not None
        return m.Trunk(
            name=name, host=host, port=port, transport=transport, media_encryption=enc,
            codecs=codecs or ("ulaw", "alaw"), dtmf=dtmf or "rfc4733", match=match,
            register=register, auth=auth, from_user=from_user, from_domain=from_domain,
            caller_id=caller_id, send_pai=self.boolean(f.get("send_pai"), at("send_pai"),
                                                       False),
            fax=m.FaxMode(fax or "g711"), nat=self.boolean(f.get("nat"), at("nat"), False),
            max_calls=self.integer(f.get("max_calls"), at("max_calls"), 1, 2000, 30),
            qualify_seconds=self.integer(f.get("qualify_seconds"), at("qualify_seconds"),
                                         0, 3600, 60))

    def inbound(self, node: yaml.Node | None, path: str
                ) -> tuple[tuple[str, ...], m.Registration | None]:
        f = self.mapping(node, path, s.INBOUND.keys)
        if f is None:
            return (), None
        match = self.networks(f.get("match"), child(path, "match"))
        register = None
        reg = f.get("register")
        if isinstance(reg, yaml.MappingNode):
            r = self.mapping(reg, child(path, "register"), s.REGISTER.keys) or {}
            at = lambda key: child(child(path, "register"), key)  # noqa: E731
            d = m.Registration()
            register = m.Registration(
                self.integer(r.get("expiration"), at("expiration"), 60, 86400, d.expiration),
                self.integer(r.get("retry_seconds"), at("retry_seconds"), 5, 3600,
                             d.retry_seconds),
                self.integer(r.get("forbidden_retry_seconds"), at("forbidden_retry_seconds"),
                             30, 86400, d.forbidden_retry_seconds),
                self.text(r.get("contact_user"), at("contact_user"), "an account or number",
                          s.USER_RE))
        elif reg is not None and self.boolean(reg, child(path, "register"), False):
            register = m.Registration()
        if not match and register is None:
            self.c.error(node, path, None, "match: [addresses] and/or register: true",
                         "no way to tell this carrier's calls from anyone else's")
        return match, register

    def auth(self, node: yaml.Node, path: str) -> m.Auth | None:
        f = self.mapping(node, path, s.AUTH.keys)
        if f is None:
            return None
        user = self.text(f.get("username"), child(path, "username"), "an account name",
                         s.USER_RE)
        secret = self.secret(node, f, path)
        realm = self.text(f.get("realm"), child(path, "realm"), "a realm (letters, digits, "
                          "dots, dashes)", s.REALM_RE)
        if user is None or secret is None:
            return None
        return m.Auth(user, secret, realm)

    def secret(self, node: yaml.Node, f: dict[str, yaml.Node], path: str) -> m.Secret | None:
        if ("password_env" in f) == ("password_file" in f):
            self.c.error(node, child(path, "password_env"), None,
                         "password_env or password_file (one of them)",
                         "the password is read from the environment or a file, never "
                         "written here")
            return None
        if "password_env" in f:
            env = self.text(f["password_env"], child(path, "password_env"),
                            "a variable name such as IVR_CARRIER_PASSWORD", s.ENV_RE)
            return m.Secret(env=env) if env else None
        file = self.text(f["password_file"], child(path, "password_file"),
                         "an absolute path", s.PATH_RE)
        return m.Secret(file=file) if file else None

    def tls(self, node: yaml.Node) -> m.Tls | None:
        f = self.mapping(node, "tls", s.TLS.keys) or {}
        d = m.Tls()
        paths = {k: self.text(f.get(k), f"tls.{k}", "an absolute path", s.PATH_RE)
                 for k in ("cert_file", "key_file", "ca_file")}
        if (paths["cert_file"] is None) != (paths["key_file"] is None):
            self.c.error(node, "tls.cert_file", None, "cert_file and key_file together",
                         "a certificate needs its key (and a key its certificate)")
        return m.Tls(self.integer(f.get("port"), "tls.port", 1, 65535, d.port),
                     paths["cert_file"], paths["key_file"], paths["ca_file"] or d.ca_file,
                     self.boolean(f.get("verify_server"), "tls.verify_server", True),
                     self.boolean(f.get("verify_client"), "tls.verify_client", False))

    def nat(self, node: yaml.Node | None) -> m.Nat:
        f = self.mapping(node, "nat", s.NAT.keys) or {}
        ext = {k: self.address(f.get(k), f"nat.{k}")
               for k in ("external_signaling_address", "external_media_address")}
        return m.Nat(ext["external_signaling_address"], ext["external_media_address"],
                     self.networks(f.get("local_net"), "nat.local_net"))

    def guard(self, node: yaml.Node | None) -> m.Guard:
        f = self.mapping(node, "guard", s.GUARD.keys) or {}
        d = m.Guard()
        return m.Guard(
            self.integer(f.get("failures"), "guard.failures", 1, 1000, d.failures),
            self.integer(f.get("requests"), "guard.requests", 5, 100000, d.requests),
            self.integer(f.get("window_seconds"), "guard.window_seconds", 1, 3600,
                         d.window_seconds),
            self.integer(f.get("ban_seconds"), "guard.ban_seconds", 10, 30 * 86400,
                         d.ban_seconds),
            self.integer(f.get("max_calls_per_source"), "guard.max_calls_per_source", 1,
                         2000, d.max_calls_per_source),
            self.networks(f.get("never_ban"), "guard.never_ban"))

    def roles(self, node: yaml.Node | None, trunks: dict[str, m.Trunk], tls: m.Tls | None,
              top: dict[str, yaml.Node]) -> dict[str, str]:
        f = self.mapping(node, "roles", s.ROLES_OBJ.keys) or {}
        out: dict[str, str] = {}
        for role, vnode in f.items():
            name = self.text(vnode, f"roles.{role}", "the name of a trunk above")
            if name is None:
                continue
            if name not in trunks:
                if trunks or "trunks" not in top:  # else the trunks' own errors say it
                    self.c.error(vnode, f"roles.{role}", name,
                                 "one of: " + ", ".join(trunks) if trunks else "a trunk",
                                 f"no trunk named {name!r}")
                continue
            out[role] = name
        if "callbacks" in out and out["callbacks"] != out.get("clinicians"):
            self.c.error(f["callbacks"], "roles.callbacks", out["callbacks"],
                         f"the clinician trunk ({out.get('clinicians')})",
                         "a patient call-back is dialled from the clinician's own call, on "
                         "the clinician trunk")
        if "clinicians" in out:
            out.setdefault("callbacks", out["clinicians"])
        return out

    # ---- values ------------------------------------------------------------------------
    def address(self, node: yaml.Node | None, path: str) -> str | None:
        value = self.text(node, path, "an IP address")
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            self.c.error(node, path, value, "an IP address", f"{value!r} is not an address")
            return None

    def networks(self, node: yaml.Node | None, path: str) -> tuple[str, ...]:
        out = []
        for i, item in enumerate(self.seq(node, path, "a list of addresses or networks")):
            value = self.text(item, child(path, i), "an IP address or network")
            if value is None:
                continue
            try:
                out.append(str(ipaddress.ip_network(value, strict=False)))
            except ValueError:
                self.c.error(item, child(path, i), value,
                             "an IP address or network such as 198.51.100.0/24",
                             f"{value!r} is not an address or network")
        return tuple(out)

    def _unique_names(self, node: yaml.Node | None, built: list[m.Trunk]) -> None:
        seen: set[str] = set()
        items = node.value if isinstance(node, yaml.SequenceNode) else []
        for trunk, item in zip(built, items, strict=False):
            if trunk.name in seen or trunk.name in RESERVED_NAMES:
                self.c.error(item, "trunks", trunk.name, "a name used once, not one of "
                             + ", ".join(sorted(RESERVED_NAMES)),
                             f"the trunk name {trunk.name!r} is taken")
            seen.add(trunk.name)


#: PJSIP section names the renderer uses for roles and transports.
RESERVED_NAMES = frozenset({"trunk", "clinician-gateway", "fax-trunk", "test-phone", "testphone",
                            "transport-udp", "transport-tcp", "transport-tls", "global"})


def load(path: Path, display: str | None = None
         ) -> tuple[m.TrunksConfig | None, list[rm.Issue]]:
    """Read and validate one trunks file: the config, or None and the errors."""
    display = display or str(path)
    col = Collector(display)
    try:
        raw = read_bounded(path, MAX_TRUNKS_FILE_BYTES)
        text = raw.decode("utf-8")
    except (InputRefused, UnicodeDecodeError) as exc:
        col.error(None, "", display, "a readable UTF-8 YAML file of at most 256 KiB",
                  f"cannot read file: {exc}")
        return None, col.errors
    try:
        root = compose(text, display)
    except TooDeep as exc:
        _at(col, exc, f"at most {MAX_DEPTH} levels of nesting", str(exc.problem))
        return None, col.errors
    except yaml.MarkedYAMLError as exc:
        _at(col, exc, "valid YAML", f"YAML syntax error: {exc.problem or exc}")
        return None, col.errors
    except yaml.YAMLError as exc:
        col.error(None, "", None, "valid YAML", f"YAML error: {exc}")
        return None, col.errors
    if root is None:
        col.error(None, "", None, "a mapping with trunks and roles", "the file is empty")
        return None, col.errors
    findings = check_limits(root)
    for fd in findings:
        col.error(fd.node, fd.key, fd.value, fd.expected, fd.message)
    if findings:
        return None, col.errors
    config = TrunksReader(col, path.parent, datetime.now(UTC)).build(root)
    return config, col.errors


def _at(col: Collector, exc: yaml.MarkedYAMLError, expected: str, message: str) -> None:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    col.errors.append(rm.Issue(col.file, line, column, "", None, expected, message))

