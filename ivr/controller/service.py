"""The controller process: FastAGI server, AMI client, rules, reconciliation, lifecycle."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from ivr import clock as periodic
from ivr import contract
from ivr.agi.server import AgiServer
from ivr.ami import AmiAuthError, AmiClient, AmiError
from ivr.config import Settings
from ivr.controller.admission import Admission
from ivr.controller.metrics import ControllerMetrics, MetricsServer, metrics_app
from ivr.controller.services import Services, audit_failed
from ivr.db.engine import Database
from ivr.flows.intake import SPOOL_INTAKE_DIR
from ivr.flows.routes import build_routes
from ivr.oncall.scheduler import CallbackScheduler
from ivr.pbx.instance import AMI_USER, PbxError, PbxInstance
from ivr.pbx.root import find_root
from ivr.records import audit, calls, journal
from ivr.retention import purge as retention
from ivr.rules import RuleSet
from ivr.rules.runtime import (
    CHANGE_LOADED,
    SOURCE_SIGHUP,
    RulesChange,
    RulesRuntime,
    pid_path,
    remove_pid_file,
    write_pid_file,
)
from ivr.secure import files, keys

log = logging.getLogger(__name__)

RECONCILE_EVERY = 30.0
#: How often the journal (steps kept while the database was gone) is tried again.
JOURNAL_EVERY = 2.0
FALLBACK_REFRESH_EVERY = 60.0
RETENTION_EVERY = 3600.0  # seconds between two retention purges (ivr.retention.purge)
# At start-up the first purge waits this long for the PBX's hang-up stamps to be folded
# in (reconcile), then goes ahead without them: retention does not depend on the PBX.
RETENTION_FIRST_WAIT = 30.0
AUDIT_FILES_LISTED = 30  # changed rules files named in one audit entry (all are counted)


class ControllerError(RuntimeError):
    """The controller cannot start; the message says what to do."""


def rules_change_entry(change: RulesChange) -> tuple[str, str | None, dict[str, Any]]:
    """(action, subject, detail) of the audit entry for a rules change or refusal."""
    files = list(change.files[:AUDIT_FILES_LISTED])
    if change.kind == CHANGE_LOADED:
        return audit.RULES_RELOAD, change.digest_to, {
            "source": change.source, "digest_from": change.digest_from,
            "digest_to": change.digest_to, "files": files, "files_changed": len(change.files)}
    return audit.RULES_REFUSED, change.digest_from, {
        "source": change.source, "errors": change.error_count, "files": files,
        "digest_in_force": change.digest_from}


def audit_rules_changes(runtime: RulesRuntime, db: Database, actor: str) -> None:
    """Record every rules change and refusal in the audit log; a failed write is only logged.

    The reload has already swapped the rules when this runs: the log never holds it back.
    """
    async def write(change: RulesChange) -> None:
        action, subject, detail = rules_change_entry(change)
        try:
            await audit.record(db, actor, action, subject=subject, detail=detail)
        except Exception as exc:  # the database may be down; the rules are in force anyway
            audit_failed(action, exc)

    runtime.on_change(write)


async def run_retention(db: Database, rules: Callable[[], RuleSet | None], data_dir: Path, *,
                        ready: asyncio.Event | None = None,
                        first_wait: float = RETENTION_FIRST_WAIT,
                        every: float = RETENTION_EVERY,
                        clock: Callable[[], datetime] = calls.now,
                        actor: str = audit.controller_actor("default")) -> None:
    """Purge once at start-up (after `ready`, or `first_wait` seconds), then every `every`.

    A failed run is logged and the next one comes on time: retention never stops the
    controller. Without rules in force nothing is purged, since the defaults could be
    shorter than what a practice asked for. Each run that completes gets one
    `retention.run` audit entry; a failure to write it is logged, the purge stands.
    """
    if ready is not None:
        try:
            await asyncio.wait_for(ready.wait(), first_wait)
        except TimeoutError:
            log.info("retention: first purge without waiting for reconciliation")
    async def one_run() -> None:
        current = rules()
        if current is None:
            log.warning("retention skipped: no rules in force")
            return
        summary = await retention.purge(db, current, clock(), data_dir)
        try:
            await audit.record(db, actor, audit.RETENTION_RUN, subject=summary.run_id,
                               detail=summary.audit_detail())
        except Exception as exc:  # the purge stands; the missing entry is logged
            audit_failed(audit.RETENTION_RUN, exc)

    await periodic.every(every, one_run, "retention run", log=log, first_delay=0)


class Controller:
    """Starts and stops the services in order; the caller never meets a half-started one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.actor = audit.controller_actor(settings.instance)  # who, in the audit log
        root = find_root(settings.cache_dir)
        if root is None:
            raise ControllerError("no Asterisk found: run `ivr pbx up` (or `make run`) first")
        self.pbx = PbxInstance(settings, root)
        self.db = Database(settings.database_url)
        # A call's steps the database cannot take go here until it is back (one file per
        # controller: two controllers may share a data folder, never an AGI port).
        self.journal = journal.Journal(settings.data_dir / "journal" /
                                       f"controller-{settings.agi_port}.jsonl")
        journal.attach(self.db, self.journal)
        self.ami = AmiClient(settings.ami_host, settings.ami_port, AMI_USER,
                             self.pbx.ami_secret)
        self.services = Services(settings, self.db, self.pbx, self.ami)
        self.scheduler = CallbackScheduler(self.services)
        self.metrics = ControllerMetrics(calls_up=lambda: len(self.agi.calls),
                                         refused=lambda: self.agi.refused, ami=self.ami,
                                         registering_trunks=self._registering_trunks,
                                         admission=lambda: self.admission.snapshot())
        # New calls over the load limits go to the dialplan's intake (admission.py).
        self.admission = Admission(settings.admission_max_calls, settings.admission_max_lag_ms)
        routes = build_routes(self.services)
        routes[contract.ROUTE_INBOUND] = self.admission.guard(routes[contract.ROUTE_INBOUND])
        self.agi = AgiServer(routes, settings.agi_host, settings.agi_port,
                             on_refused=self.services.report_refused,
                             on_command=self.metrics.observe_command)
        self.metrics_server: MetricsServer | None = None
        if settings.controller_metrics_port:
            self.metrics_server = MetricsServer(metrics_app(self.metrics, self.db),
                                                settings.controller_metrics_host,
                                                settings.controller_metrics_port)
        self._stop = asyncio.Event()
        self._reconciled = asyncio.Event()  # set after the first reconcile
        self._tasks: list[asyncio.Task[None]] = []
        self._signal_tasks: set[asyncio.Task[bool]] = set()
        self._rules_watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Patient data at rest: the key file first (made on the very first start), and
        # whatever an older version left group- or world-readable in the data folder.
        if keys.ensure(self.settings):
            log.info("created the key file %s (one new key); keep a copy of it apart from "
                     "the data: without it the sealed data cannot be read",
                     self.settings.key_file)
        keys.current()
        self.journal.load()
        tightened = await asyncio.to_thread(files.tighten, self.settings.data_dir)
        if tightened:
            log.info("data folder: %d file and folder modes tightened to 0600/0700",
                     tightened)
        # A database that is not reachable yet (PostgreSQL starting, a network blip) is
        # waited for, with back-off and one log line per try; the AGI port stays closed
        # meanwhile, so the dialplan sends calls to another controller or its fallback.
        await self.db.create_when_reachable()
        if len(self.journal):  # steps kept before a crash or stop: in the record first
            log.info("journal: %d steps kept from before; writing them",
                     len(self.journal))
            await journal.replay(self.db, self.journal)
        # Where RECORD FILE writes intake recordings before the controller moves them:
        # Asterisk writes there, so the folder is the PBX user's.
        intake_spool = self.pbx.spool_dir / SPOOL_INTAKE_DIR
        intake_spool.mkdir(parents=True, exist_ok=True)
        self.pbx.give_to_pbx(intake_spool)
        # Rules (startup load, file watch, prompts and fallbacks after each good load) -----
        # Prompts first: the startup load finishes them before the AGI server takes calls.
        self.services.runtime.on_loaded(self._prepare_prompts)
        self.services.runtime.on_loaded(self._on_rules_loaded)
        audit_rules_changes(self.services.runtime, self.db, self.actor)
        await self.services.runtime.load()
        # ----------------------------------------------------------------------------------
        # Transcription workers start (and load their model) in the background: a call
        # that records before they are ready has its transcript queued, never waits.
        self.services.transcriber.start()
        # AGI first: calls are served even while AMI is still connecting.
        self._tasks.append(asyncio.create_task(self.admission.probe_lag(),
                                               name="admission-lag"))
        await self.agi.start()
        if self.metrics_server is not None:
            await self.metrics_server.start()
        self.ami.subscribe(contract.EV_CALL_ENDED, self._on_call_ended)
        self.services.dialer.subscribe()  # leg events; resolves lost legs on (re)connect
        self.ami.on_connected(self._on_ami_connected)
        try:
            await self.ami.connect(timeout=10)
        except AmiAuthError:
            await self.agi.stop()
            raise
        except AmiError as exc:
            log.warning("%s; will keep trying", exc)
            self.ami.start_background()
        self._tasks.append(asyncio.create_task(self._periodic(), name="periodic"))
        self._tasks.append(asyncio.create_task(self._replay_journal(), name="journal"))
        # Documents to practices (fax, e-mail, webhook) go through the database outbox;
        # a delivery in flight at stop is retried when its lease expires.
        from ivr.delivery.outbox import run_forever
        from ivr.delivery.wiring import build_senders

        senders = build_senders(self.ami, self.pbx)
        self._tasks.append(asyncio.create_task(run_forever(self.db, senders),
                                               name="delivery-outbox"))
        # Morning reports (ivr.documents): each practice's night is made once, at its
        # opening, and its documents enqueued in the outbox above. --------------------------
        from ivr.documents.scheduler import ReportScheduler

        reports = ReportScheduler(self.db, lambda: self.services.rules,
                                  self.settings.data_dir / "documents",
                                  link_base=self.settings.web_public_url)
        self._tasks.append(asyncio.create_task(reports.run(), name="morning-reports"))
        # ----------------------------------------------------------------------------------
        # Retention: each practice's old recordings and records deleted, every run logged.
        self._tasks.append(asyncio.create_task(run_retention(
            self.db, lambda: self.services.rules, self.settings.data_dir,
            ready=self._reconciled, actor=self.actor), name="retention"))
        self._tasks.append(asyncio.create_task(self.scheduler.run(), name="callbacks"))
        self._rules_watch = asyncio.create_task(self.services.runtime.watch(), name="rules-watch")
        self._tasks.append(self._rules_watch)
        write_pid_file(pid_path(self.settings))  # `ivr rules reload` signals this pid
        log.info("controller ready: AGI %s:%d, AMI %s:%d, database %s",
                 self.settings.agi_host, self.agi.port, self.settings.ami_host,
                 self.settings.ami_port,
                 # The driver only: a URL may carry a password (postgresql://u:p@h/db).
                 make_url(self.db.url).drivername)

    def _registering_trunks(self) -> list[str]:
        """The trunks the trunks file says register (none without a file)."""
        try:
            config = self.pbx.trunks()
        except PbxError:
            return []  # a broken file: `ivr trunks check` says why; the PBX lists the rest
        return [t.name for t in config.trunks if t.register is not None] if config else []

    async def _on_ami_connected(self) -> None:
        await self.services.write_fallbacks()
        await self.services.reconcile()
        await self.services.sweep_lost_calls()
        self._reconciled.set()

    async def _on_call_ended(self, event: Any) -> None:
        uniqueid = event.get("Uniqueid", "")
        await self.services.reconcile(only=uniqueid)

    async def _periodic(self) -> None:
        last_fallback = 0.0
        loop = asyncio.get_running_loop()

        async def one_round() -> None:
            nonlocal last_fallback
            if not self.ami.connected:
                return
            await self.services.reconcile()
            await self.services.sweep_lost_calls()
            if loop.time() - last_fallback >= FALLBACK_REFRESH_EVERY:
                await self.services.write_fallbacks()  # on-call handoffs move the numbers
                last_fallback = loop.time()

        await periodic.every(RECONCILE_EVERY, one_round, "reconciliation", log=log)

    async def _replay_journal(self) -> None:
        async def one_round() -> None:
            if not len(self.journal):
                return
            written = await journal.replay(self.db, self.journal)
            if written:
                log.info("journal: %d steps written now that the database is back "
                         "(%d still kept)", written, len(self.journal))
                if self.ami.connected:  # the stamps of calls that ended meanwhile
                    await self.services.reconcile()

        await periodic.every(JOURNAL_EVERY, one_round, "journal replay", log=log)

    async def reload(self, source: str = SOURCE_SIGHUP) -> bool:
        """Reload the rules (SIGHUP, `ivr rules reload`); broken rules leave the old in force."""
        if source == SOURCE_SIGHUP:  # `ivr rules reload` leaves a request file before the signal
            return await self.services.runtime.reload_on_signal()
        return await self.services.runtime.reload(source)

    async def _prepare_prompts(self, rules: RuleSet) -> None:
        count = await asyncio.to_thread(self.services.speech.prepare_rules, rules)
        log.info("prompts ready for rules %s: %d texts", rules.digest, count)

    async def _on_rules_loaded(self, rules: RuleSet) -> None:
        if self.ami.connected:  # otherwise _on_ami_connected writes them
            await self.services.write_fallbacks()

    def _on_sighup(self) -> None:
        task = asyncio.create_task(self.reload(), name="rules-reload")
        self._signal_tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._signal_tasks.discard)

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT, reload rules on SIGHUP, then stop.

        A stop request during the start (the first rules load can take up to its
        deadline) cancels the start instead of waiting for it: the controller then
        stops what was started so far.
        """
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        starting = asyncio.create_task(self.start(), name="controller-start")
        stop_requested = asyncio.create_task(self._stop.wait(), name="stop-requested")
        try:
            await asyncio.wait({starting, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                log.info("stop requested while starting; the start is abandoned")
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
            elif starting.exception() is None:
                await stop_requested
            else:
                starting.result()  # a start that failed raises here, as it always did
        finally:
            stop_requested.cancel()
        await self.stop()

    async def stop(self) -> None:
        log.info("controller stopping")
        # A reload in progress is abandoned (its child process killed) before calls are
        # drained: the rules in force do not matter any more, and it could otherwise
        # hold the stop for the whole load deadline.
        for task in (*self._signal_tasks, *([self._rules_watch] if self._rules_watch else [])):
            task.cancel()
        await self.agi.stop(drain_seconds=5)
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.scheduler.stop()
        await self.services.transcriber.stop()
        remove_pid_file(pid_path(self.settings))
        await asyncio.gather(*self._signal_tasks, return_exceptions=True)
        await self.ami.close()
        await self.db.close()
