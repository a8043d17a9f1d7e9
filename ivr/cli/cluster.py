"""The `ivr cluster` commands: a local cluster (up, status, drain, undrain, down) and the
SIP entry alone in the foreground (`proxy`, for a container or a service manager)."""

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path
from typing import Any

from ivr.cli import common
from ivr.cli.common import add_json, show
from ivr.cli.errors import UsageError
from ivr.cluster.layout import MAX_CONTROLLERS, MAX_NODES, Layout

FOLDER_ENV = "IVR_CLUSTER_DIR"
# `proxy` in a container: its settings from the environment.
ENTRY_ENV, NODES_ENV, CARRIERS_ENV = "IVR_ENTRY", "IVR_NODES", "IVR_CARRIERS"


def _folder(args: argparse.Namespace) -> Path:
    if args.folder:
        return Path(args.folder).expanduser().absolute()
    env = os.environ.get(FOLDER_ENV, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    return common.load_settings().data_dir.absolute() / "cluster"


def _host_port(option: str, text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected ADDRESS:PORT, e.g. 127.0.0.1:5060") \
            from None
    if not sep or not 1 <= number <= 65535:
        raise UsageError(f"{option} {text!r}: expected ADDRESS:PORT with a port 1-65535")
    return host, number


def _cluster(args: argparse.Namespace) -> Any:
    from ivr.cluster.local import LocalCluster

    return LocalCluster.found(_folder(args), common.load_settings())


def cmd_up(args: argparse.Namespace) -> int:
    from ivr.cluster.local import LocalCluster

    entry_host, entry_port = _host_port("--entry", args.entry)
    values = {"folder": _folder(args), "nodes": args.nodes, "controllers": args.controllers,
              "prefix": args.prefix, "entry_host": entry_host, "entry_port": entry_port,
              "first_node": args.first_node, "db_port": args.db_port,
              "sip_port": args.sip_port, "ami_port": args.ami_port, "agi_port": args.agi_port,
              "port_step": args.port_step, "rtp_start": args.rtp_start,
              "rtp_per_node": args.rtp_per_node, "probe_seconds": args.probe_seconds,
              "fail_over_ms": args.fail_over_ms}
    previous = Layout.load(values["folder"])
    if previous is not None and not args.replace and previous != Layout(**values):
        raise UsageError(f"{values['folder']} holds a cluster laid out otherwise (e.g. "
                         f"{previous.nodes} node(s)); `ivr cluster down` it and run up "
                         "with --replace, or use another --folder")
    cluster = LocalCluster(Layout(**values), common.load_settings())
    cluster.up(timeout=args.timeout)
    status = cluster.status()
    if args.json:
        show(status, True)
    else:
        _print_status(status)
        print(f"\n  Call it:  sip:NUMBER@{entry_host}:{entry_port}  (UDP; the nodes accept "
              "calls from Kamailio only)\n  Stop it:  ivr cluster down")
    return 0 if cluster.all_running(status) else 3


def _print_status(status: dict[str, Any]) -> None:
    def word(running: bool) -> str:
        return "running" if running else "NOT RUNNING"

    entry, db = status["entry"], status["database"]
    print(f"cluster in {status['folder']}")
    print(f"  Kamailio   {entry['sip']}  {word(entry['running'])}")
    print(f"  PostgreSQL {db['url']}  {word(db['running'])}")
    for node in status["nodes"]:
        print(f"  {node['name']:<10} SIP {node['sip']}  dispatcher {node['dispatcher']}  "
              f"Asterisk {word(node['asterisk']['running'])}")
        for ctl in node["controllers"]:
            print(f"             controller {ctl['agi']}  {word(ctl['running'])}")


def cmd_status(args: argparse.Namespace) -> int:
    cluster = _cluster(args)
    status = cluster.status()
    if args.json:
        show(status, True)
    else:
        _print_status(status)
    return 0 if cluster.all_running(status) else 3


def _drain(args: argparse.Namespace, back: bool) -> int:
    state = _cluster(args).drain(args.node, back=back)
    if args.json:
        show({"node": args.node, "dispatcher": state}, True)
    else:
        print(f"{args.node}: {state}" + ("" if back else
              " (calls in progress on it go on; no new call goes there)"))
    return 0


def cmd_drain(args: argparse.Namespace) -> int:
    return _drain(args, back=False)


def cmd_undrain(args: argparse.Namespace) -> int:
    return _drain(args, back=True)


def cmd_down(args: argparse.Namespace) -> int:
    cluster = _cluster(args)
    cluster.down()
    if args.json:
        show(cluster.status(), True)
    else:
        print(f"cluster in {cluster.layout.folder} stopped (its data stays there)")
    return 0


def cmd_proxy(args: argparse.Namespace) -> int:
    """Kamailio alone, in the foreground, in front of the nodes named on the command line."""
    from ivr.cluster.kamailio import KamailioProxy, Node

    listen = args.listen or os.environ.get(ENTRY_ENV, "").strip()
    if not listen:
        raise UsageError(f"--listen: say where Kamailio listens (or set {ENTRY_ENV})")
    host, port = _host_port("--listen", listen)
    given = args.node or [n.strip() for n in os.environ.get(NODES_ENV, "").split(",")
                          if n.strip()]
    nodes = []
    for item in given:
        name, sep, address = item.partition("=")
        if not sep:
            raise UsageError(f"--node {item!r}: expected NAME=ADDRESS:PORT")
        try:
            nodes.append(Node(name, *_host_port("--node", address)))
        except ValueError as exc:
            raise UsageError(f"--node {item!r}: {exc}") from None
    if not nodes:
        raise UsageError("--node: name at least one node (NAME=ADDRESS:PORT)")
    carriers = os.environ.get(CARRIERS_ENV, "").strip()
    trunk = tuple(args.trunk or (carriers or common.load_settings().trunk_match).split(","))
    proxy = KamailioProxy(Path(args.folder).absolute(), host, port, nodes,
                          trunk_match=trunk, probe_seconds=args.probe_seconds,
                          fail_over_ms=args.fail_over_ms)
    proxy.exec_foreground()  # does not return
    return 0  # pragma: no cover


def add_commands(sub: Any) -> None:
    """Register `cluster` and its subcommands."""
    cluster = sub.add_parser("cluster", help="several Asterisk nodes and controllers behind "
                             "Kamailio on one PostgreSQL, on this machine's loopback")
    csub = cluster.add_subparsers(dest="cluster_command", required=True)

    def with_folder(parser: Any) -> Any:
        parser.add_argument("--folder", metavar="DIR", help="the cluster's folder (default: "
                            f"${FOLDER_ENV}, else IVR_DATA_DIR/cluster)")
        add_json(parser)
        return parser

    up = with_folder(csub.add_parser("up", help="start PostgreSQL, the nodes (Asterisk and "
                                     "controllers) and Kamailio; what runs already stays"))
    up.add_argument("--nodes", type=int, default=2, help=f"nodes, 1-{MAX_NODES} (default 2)")
    up.add_argument("--controllers", type=int, default=2, help="controllers per node, "
                    f"1-{MAX_CONTROLLERS}; the first answers, the others back it up "
                    "(default 2)")
    up.add_argument("--prefix", default="node", help="node names are PREFIX1, PREFIX2, ...: "
                    "also their Asterisk instance names, unique on this machine "
                    "(default node)")
    up.add_argument("--entry", default="127.0.0.1:5060", metavar="ADDRESS:PORT",
                    help="where Kamailio takes the carrier's calls (default 127.0.0.1:5060)")
    up.add_argument("--first-node", default="127.0.0.2", metavar="ADDRESS",
                    help="the first node's loopback address; the next nodes on the next "
                    "ones (default 127.0.0.2)")
    up.add_argument("--db-port", type=int, default=5440, help="PostgreSQL's port on "
                    "127.0.0.1 (default 5440)")
    up.add_argument("--sip-port", type=int, default=5060, help="each node's SIP port "
                    "(default 5060)")
    up.add_argument("--ami-port", type=int, default=5038, help="each node's AMI port "
                    "(default 5038)")
    up.add_argument("--agi-port", type=int, default=4573, help="each node's first "
                    "controller; the next controllers on the next ports (default 4573)")
    up.add_argument("--port-step", type=int, default=0, help="added to the node ports for "
                    "each next node (default 0: nodes differ by address only)")
    up.add_argument("--rtp-start", type=int, default=20000, help="the first node's first "
                    "RTP port (default 20000)")
    up.add_argument("--rtp-per-node", type=int, default=1000, help="RTP ports of each "
                    "node, from the previous node's last (default 1000)")
    up.add_argument("--probe-seconds", type=int, default=2, help="seconds between two "
                    "OPTIONS probes of each node (default 2)")
    up.add_argument("--fail-over-ms", type=int, default=2000, help="a node silent this "
                    "long is passed over for the next (default 2000)")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the "
                    "controllers to get ready (default 180)")
    up.add_argument("--replace", action="store_true", help="lay the folder's cluster out "
                    "anew (after `ivr cluster down`); its data stays")
    up.set_defaults(func=cmd_up)

    status = with_folder(csub.add_parser("status", help="what runs, and each node's state "
                                         "in Kamailio's dispatcher (exit 3 if a part is "
                                         "down)"))
    status.set_defaults(func=cmd_status)
    for name, func, text in (
            ("drain", cmd_drain, "no new call goes to NODE; its calls in progress go on"),
            ("undrain", cmd_undrain, "NODE takes new calls again")):
        parser = with_folder(csub.add_parser(name, help=text))
        parser.add_argument("node", help="the node's name, e.g. node1")
        parser.set_defaults(func=func)
    down = with_folder(csub.add_parser("down", help="stop Kamailio, the nodes and "
                                       "PostgreSQL; the data stays"))
    down.set_defaults(func=cmd_down)

    proxy = csub.add_parser("proxy", help="render and run Kamailio in the foreground in "
                            "front of the nodes named (containers, service managers)")
    proxy.add_argument("--listen", metavar="ADDRESS:PORT", help="where Kamailio takes the "
                       f"carrier's calls (default ${ENTRY_ENV})")
    proxy.add_argument("--node", action="append", default=[], metavar="NAME=ADDRESS:PORT",
                       help="an answering node's SIP address (repeat for each node; "
                       f"default ${NODES_ENV}, comma-separated)")
    proxy.add_argument("--trunk", action="append", metavar="ADDRESS_OR_NETWORK",
                       help="a carrier address that may send calls (repeat; default "
                       f"${CARRIERS_ENV}, comma-separated, else IVR_TRUNK_MATCH)")
    proxy.add_argument("--folder", required=True, metavar="DIR",
                       help="where the rendered configuration and control socket go")
    proxy.add_argument("--probe-seconds", type=int, default=2,
                       help="seconds between two OPTIONS probes of each node (default 2)")
    proxy.add_argument("--fail-over-ms", type=int, default=2000,
                       help="a node silent this long is passed over (default 2000)")
    proxy.set_defaults(func=cmd_proxy)
