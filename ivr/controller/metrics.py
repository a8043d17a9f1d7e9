"""The controller's own Prometheus endpoint: what only this process knows.

The portal's `/metrics` (ivr.web.metrics) counts what the database holds, once for the
whole cluster. This one serves what lives in one controller's memory or comes from its
PBX: the latency of every AGI command it sent (by command verb and outcome), the calls
it is serving now, whether its AMI link is up, and each carrier trunk's registration
(read over AMI at every scrape: PJSIPShowRegistrationsOutbound).

Off unless IVR_CONTROLLER_METRICS_PORT is set; it listens on
IVR_CONTROLLER_METRICS_HOST (127.0.0.1) and answers only an operator's API token, the
same policy as the portal's `/metrics` (ivr.accounts.access: Need.METRICS).

Labels are our own constants (AGI verbs, outcomes) and trunk names from the trunks file:
never a number, a name, a channel or anything a caller sent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ivr.accounts import store
from ivr.accounts.access import Need, allowed
from ivr.ami import AmiClient, AmiError
from ivr.db.engine import Database
from ivr.records import calls

log = logging.getLogger(__name__)

# Seconds: a SET VARIABLE answers in about a millisecond, a prompt (STREAM FILE, GET
# DATA) or a recording in seconds to minutes.
AGI_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
               10.0, 30.0, 60.0, 120.0, 300.0)
#: What a verb label may look like: build_command's own rule for a command name.
_VERB = re.compile(r"[A-Z][A-Z ]{0,30}[A-Z]")
#: Our registrations are rendered as `<trunk>-reg` (ivr.trunks.pjsip).
_REGISTRATION = re.compile(r"([a-z0-9][a-z0-9-]{0,39})-reg")
AMI_TIMEOUT = 5.0  # a scrape does not wait longer for the PBX's registration list


def registration_states(entries: Iterable[dict[str, Any]]) -> dict[str, bool]:
    """trunk name -> registered, from PJSIPShowRegistrationsOutbound's events (pure)."""
    out: dict[str, bool] = {}
    for entry in entries:
        if entry.get("Event") != "OutboundRegistrationDetail":
            continue
        match = _REGISTRATION.fullmatch(str(entry.get("ObjectName", "")))
        if match is not None:
            out[match.group(1)] = entry.get("Status") == "Registered"
    return out


class ControllerMetrics:
    """The series; the AGI server feeds `observe_command`, the rest is read at a scrape."""

    def __init__(self, *, calls_up: Callable[[], int], refused: Callable[[], int],
                 ami: AmiClient | None = None,
                 registering_trunks: Callable[[], list[str]] | None = None,
                 admission: Callable[[], dict[str, Any]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.agi_seconds = Histogram(
            "ivr_agi_command_seconds", "AGI commands this controller sent, from sending to "
            "Asterisk's reply, by command verb and outcome", ["command", "outcome"],
            buckets=AGI_BUCKETS, registry=self.registry)
        self._calls_up, self._refused = calls_up, refused
        self._ami, self._registering = ami, registering_trunks
        self._admission = admission  # ivr.controller.admission.Admission.snapshot
        self._trunks: dict[str, bool] = {}
        self._trunks_read = False
        self.registry.register(self)

    def observe_command(self, verb: str, seconds: float, outcome: str) -> None:
        """The AGI channel's hook (ivr.agi.protocol.CommandHook)."""
        self.agi_seconds.labels(verb if _VERB.fullmatch(verb) else "OTHER",
                                outcome).observe(max(seconds, 0.0))

    async def refresh(self) -> None:
        """Read the trunks' registrations from the PBX (before each scrape); both values
        are replaced at once, so a scrape running beside another sees one answer whole."""
        if self._ami is None:
            return
        wanted = self._registering() if self._registering else []
        try:
            response = await self._ami.action({"Action": "PJSIPShowRegistrationsOutbound"},
                                              timeout=AMI_TIMEOUT, check=False)
        except AmiError as exc:
            log.info("metrics: trunk registrations not read (%s)", type(exc).__name__)
            self._trunks, self._trunks_read = {}, False
            return
        entries = response if isinstance(response, list) else [response]
        # A trunk the file says registers but the PBX does not list is not registered.
        self._trunks, self._trunks_read = \
            {**dict.fromkeys(wanted, False), **registration_states(entries)}, True

    def collect(self) -> Iterator[Metric]:
        """The series read at a scrape (a prometheus_client custom collector)."""
        yield _gauge("ivr_controller_calls_in_progress",
                     "Calls this controller is serving now (AGI sessions open)",
                     self._calls_up())
        refused = CounterMetricFamily("ivr_agi_refused", "AGI connections refused at the "
                                      "trust boundary since this controller started")
        refused.add_metric([], float(self._refused()))
        yield refused
        yield _gauge("ivr_controller_ami_connected", "1 while this controller's AMI "
                     "link to its PBX is up", 1 if self._ami and self._ami.connected else 0)
        yield _gauge("ivr_trunk_registrations_read", "1 when the PBX listed its trunk "
                     "registrations at this scrape (0: AMI down or no answer)",
                     1 if self._trunks_read else 0)
        trunks = GaugeMetricFamily("ivr_trunk_registered", "1 when the trunk's outbound "
                                   "registration is Registered, 0 otherwise",
                                   labels=["trunk"])
        for name, registered in sorted(self._trunks.items()):
            trunks.add_metric([name], 1.0 if registered else 0.0)
        yield trunks
        if self._admission is not None:
            load = self._admission()
            shed = CounterMetricFamily("ivr_calls_shed", "New calls sent to the dialplan's "
                                       "own intake by admission control, by cause",
                                       labels=["cause"])
            for cause, count in sorted(load["shed"].items()):
                shed.add_metric([cause], float(count))
            yield shed
            yield _gauge("ivr_event_loop_lag_ms", "The event loop's median lateness over "
                         "the last second (admission control's measure)", load["lag_ms"])

    def describe(self) -> list[Metric]:
        return []  # the families above change with each scrape; nothing to check ahead


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], float(value))
    return family


def metrics_app(metrics: ControllerMetrics, db: Database,
                clock: Callable[[], datetime] = calls.now) -> web.Application:
    """`GET /metrics` for an operator's bearer token; nothing else is served."""

    async def scrape(request: web.Request) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        who = await store.principal_for_token(db, token.strip(), clock()) \
            if scheme.lower() == "bearer" else None
        if who is None:
            return web.Response(status=401, text="a valid bearer token is needed\n",
                                headers={"WWW-Authenticate": 'Bearer realm="ivr"',
                                         "Cache-Control": "no-store"})
        if not allowed(who, Need.METRICS):
            return web.Response(status=403, text="your role does not allow this\n",
                                headers={"Cache-Control": "no-store"})
        await metrics.refresh()
        return web.Response(body=generate_latest(metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST,
                                     "Cache-Control": "no-store"})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


class MetricsServer:
    """Serves metrics_app on host:port; a port it cannot bind is logged, never fatal
    (calls matter more than their counts)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            log.error("controller metrics not served: cannot listen on %s:%d (%s)",
                      self.host, self.port, exc.strerror or type(exc).__name__)
            await runner.cleanup()
            return
        self._runner = runner
        log.info("controller metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
