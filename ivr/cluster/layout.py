"""Where a local cluster's parts listen and keep their files: pure, from its parameters.

One Kamailio (the SIP entry), one PostgreSQL, and N nodes, each an Asterisk with K
controllers, all on loopback addresses of this machine: node i (from 0) on `first_node`
+ i, its Asterisk's SIP, AMI and controllers' AGI ports the same on every node unless
`port_step` moves them (tests, to stay in their own port range). Every node's dialplan
lists its own controllers, the first as primary and the others as backups, and never
another node's: a controller serves the Asterisk whose AMI, prompts and spool it holds.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ivr.cluster.kamailio import Node
from ivr.config import ConfigError, Settings

MAX_NODES, MAX_CONTROLLERS = 9, 4
STATE_FILE = "cluster.json"  # the layout, so status/drain/down find what up started
DB_NAME = "ivr"
_PREFIX = re.compile(r"[a-z][a-z0-9-]{0,30}")


class LayoutError(ValueError):
    """A cluster parameter is out of range; the message names the option and the value."""


@dataclass(frozen=True)
class Layout:
    folder: Path
    nodes: int = 2
    controllers: int = 2  # per node: the first answers, the others back it up
    prefix: str = "node"  # node names: node1, node2, ... (Asterisk instance names too)
    entry_host: str = "127.0.0.1"  # Kamailio, where the carrier's trunk terminates
    entry_port: int = 5060
    first_node: str = "127.0.0.2"
    db_host: str = "127.0.0.1"
    db_port: int = 5440  # not 5432: a Debian install may run its own cluster there
    sip_port: int = 5060
    ami_port: int = 5038
    agi_port: int = 4573  # the node's first controller; the next ones on the next ports
    port_step: int = 0  # added to the node ports per node (0: nodes differ by address)
    rtp_start: int = 20000
    rtp_per_node: int = 1000
    probe_seconds: int = 2
    fail_over_ms: int = 2000

    def validate(self) -> Layout:
        if not 1 <= self.nodes <= MAX_NODES:
            raise LayoutError(f"--nodes {self.nodes}: expected 1-{MAX_NODES}")
        if not 1 <= self.controllers <= MAX_CONTROLLERS:
            raise LayoutError(f"--controllers {self.controllers}: expected 1-{MAX_CONTROLLERS}")
        if not _PREFIX.fullmatch(self.prefix):
            raise LayoutError(f"--prefix {self.prefix!r}: expected [a-z][a-z0-9-], max 31")
        for option, value in (("--entry", self.entry_host), ("--first-node", self.first_node),
                              ("--db-host", self.db_host)):
            try:
                address = ipaddress.ip_address(value)
            except ValueError:
                raise LayoutError(f"{option} {value!r}: expected an IP address") from None
            if not address.is_loopback:  # a local cluster: nothing beyond this machine
                raise LayoutError(f"{option} {value}: a local cluster listens on loopback "
                                  "addresses only (127.0.0.0/8)")
        last = ipaddress.ip_address(self.first_node) + self.nodes - 1
        if not last.is_loopback:
            raise LayoutError(f"--first-node {self.first_node}: {self.nodes} nodes run past "
                              "127.255.255.255")
        if self.entry_host in self.hosts():
            raise LayoutError(f"--entry {self.entry_host}: that is a node's address; "
                              "Kamailio needs its own (the nodes accept calls from it only)")
        for option, port in (("--entry", self.entry_port), ("--db-port", self.db_port),
                             *self._node_ports()):
            if not 1 <= port <= 65535:
                raise LayoutError(f"{option} port {port}: expected 1-65535")
        if self.rtp_per_node < 20 or self.rtp_per_node % 2:
            raise LayoutError(f"--rtp-per-node {self.rtp_per_node}: expected an even "
                              "number, 20 or more (two ports a call)")
        if not 1 <= self.probe_seconds <= 60 or not 500 <= self.fail_over_ms <= 30000:
            raise LayoutError("--probe-seconds 1-60 and --fail-over-ms 500-30000")
        return self

    def _node_ports(self) -> list[tuple[str, int]]:
        top = self.port_step * (self.nodes - 1)
        return [("--sip-port", self.sip_port + top), ("--ami-port", self.ami_port + top),
                ("--agi-port", self.agi_port + top + self.controllers - 1),
                ("--rtp-start", self.rtp_start + self.rtp_per_node * self.nodes - 1)]

    # --- names and addresses ----------------------------------------------------------
    def names(self) -> list[str]:
        return [f"{self.prefix}{i + 1}" for i in range(self.nodes)]

    def hosts(self) -> list[str]:
        first = ipaddress.ip_address(self.first_node)
        return [str(first + i) for i in range(self.nodes)]

    def index(self, name: str) -> int:
        if name not in self.names():
            raise LayoutError(f"no node {name!r}; the nodes are {', '.join(self.names())}")
        return self.names().index(name)

    def agi_addresses(self, i: int) -> list[str]:
        """Node i's controllers, primary first, as the dialplan names them."""
        base = self.agi_port + self.port_step * i
        return [f"{self.hosts()[i]}:{base + k}" for k in range(self.controllers)]

    # --- folders ----------------------------------------------------------------------
    @property
    def postgres_dir(self) -> Path:
        return self.folder / "postgres"

    @property
    def kamailio_dir(self) -> Path:
        return self.folder / "kamailio"

    def controller_dir(self, i: int, k: int) -> Path:
        """Controller k of node i keeps its data (recordings, documents, logs) here."""
        return self.folder / "nodes" / self.names()[i] / f"controller{k + 1}"

    # --- settings -------------------------------------------------------------------
    def settings(self, base: Settings, i: int, k: int = 0) -> Settings:
        """Controller k of node i; k = 0 is also what node i's Asterisk is rendered from
        (its dialplan tries controller 1, then the others in order)."""
        host = self.hosts()[i]
        step = self.port_step * i
        agi = self.agi_addresses(i)
        try:
            return replace(
                base, instance=self.names()[i], sip_host=host, sip_port=self.sip_port + step,
                ami_host=host, ami_port=self.ami_port + step, agi_host=host,
                agi_port=self.agi_port + step + k, agi_backups=tuple(agi[1:]),
                trunk_match=self.entry_host,  # calls come from Kamailio, never the carrier
                rtp_start=self.rtp_start + self.rtp_per_node * i,
                rtp_end=self.rtp_start + self.rtp_per_node * (i + 1) - 1,
                data_dir=self.controller_dir(i, k),
                db_url=f"postgresql+asyncpg://ivr@{self.db_host}:{self.db_port}/{DB_NAME}",
                db_password_file=self.postgres_dir / "password").validate()
        except ConfigError as exc:
            raise LayoutError(f"node {self.names()[i]}: {exc}") from None

    def proxy_nodes(self) -> list[Node]:
        return [Node(name, host, self.sip_port + self.port_step * i)
                for i, (name, host) in enumerate(zip(self.names(), self.hosts(), strict=True))]

    # --- kept in the folder -----------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["folder"] = str(self.folder)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layout:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["folder"] = Path(values["folder"])
        return cls(**values).validate()

    @classmethod
    def load(cls, folder: Path) -> Layout | None:
        """The layout `up` saved in `folder`; None when there is none."""
        path = folder / STATE_FILE
        if not path.exists():
            return None
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise LayoutError(f"{path}: not a cluster layout ({type(exc).__name__}: "
                              f"{exc}); remove it and run `ivr cluster up` again") from None
