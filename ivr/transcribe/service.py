"""Transcripts of a call's recordings: started when a recording is sealed, run in worker
processes, stored sealed; a flow may wait for one, with a limit.

Nothing here runs an engine on the event loop: the loop only reads the sealed file (in a
thread), hands its bytes to the pool and stores what comes back. A failure of any kind
is stored as a `failed` transcript (the type of the error, never its text: a message
could quote audio-derived data) and never reaches the call.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ivr.config import Settings
from ivr.db.engine import Database
from ivr.db.kinds import TranscriptStatus
from ivr.db.models import Call, Transcript
from ivr.records import calls, recordings
from ivr.transcribe import engines, registry, worker
from ivr.transcribe.redflags import Flag, match

log = logging.getLogger(__name__)

KEEP_RESULTS_SECONDS = 600  # a finished result stays in memory for a flow to pick up


@dataclass(frozen=True)
class Result:
    """A stored transcript, as a flow needs it (the text itself stays in the database)."""

    status: str
    flag: Flag | None = None


def _end_workers(pool: ProcessPoolExecutor) -> None:
    """Shut the pool down and terminate its workers instead of letting them finish.

    shutdown(wait=False) does not end a worker that is busy: it finishes its job (or its
    model's load, minutes at niceness 10 on a busy machine) and the interpreter's exit
    joins it, so a stopped controller stayed up for as long (seen beside two CPU hogs:
    no exit 20 s after SIGTERM). Python 3.14 has terminate_workers(); before it, the
    executor's own table of processes (emptied by shutdown, so read first) is the only
    handle on them.
    """
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()


class Transcriber:
    """One per controller process; `submit` when a recording is kept, `wait` for one."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.db = db
        self.engine = settings.transcribe_engine
        self.model = str(settings.transcribe_model_path) \
            if settings.transcribe_model_path else None
        self.workers = settings.transcribe_workers
        # Why no transcript can be made (None once the workers are started).
        self.unavailable: str | None = "transcription is off" \
            if self.engine == registry.OFF else "transcription was not started"
        self.languages: frozenset[str] = frozenset()
        self.version = ""
        self._pool: ProcessPoolExecutor | None = None
        self._ready: asyncio.Task[None] | None = None
        self._jobs: dict[tuple[str, str], asyncio.Task[Result]] = {}

    # --- lifetime ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker processes and load the engine in the background."""
        if self.engine == registry.OFF:
            return
        self.unavailable = None
        # spawn: a fork of a process with threads and an event loop is not safe.
        self._pool = ProcessPoolExecutor(self.workers,
                                         mp_context=multiprocessing.get_context("spawn"),
                                         initializer=worker.watch_parent,
                                         initargs=(os.getpid(),))
        self._ready = asyncio.create_task(self._warm(), name="transcribe-warm-up")

    async def _warm(self) -> None:
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        try:
            info = await loop.run_in_executor(self._pool, worker.describe, self.engine,
                                              self.model)
        except engines.EngineUnavailable as exc:
            self.unavailable = str(exc)
            log.error("transcripts unavailable: %s", exc)
            return
        except Exception as exc:
            self.unavailable = f"the {self.engine} engine failed to start " \
                               f"({type(exc).__name__})"
            log.error("transcripts unavailable: %s", self.unavailable)
            return
        self.languages, self.version = frozenset(info["languages"]), info["version"]
        log.info("transcripts by %s (languages: %s)", self.version,
                 ", ".join(sorted(self.languages)))

    async def ready(self) -> None:
        if self._ready is not None:
            await asyncio.shield(self._ready)

    async def stop(self) -> None:
        for task in self._jobs.values():
            task.cancel()
        await asyncio.gather(*self._jobs.values(), return_exceptions=True)
        if self._ready is not None:
            self._ready.cancel()
            await asyncio.gather(self._ready, return_exceptions=True)
        if self._pool is not None:
            _end_workers(self._pool)
            self._pool = None

    # --- per recording -----------------------------------------------------------------
    def submit(self, call_id: str, field: str, sealed: Path, language: str,
               flags: Sequence[Flag] = ()) -> None:
        """Start transcribing a kept recording now; returns at once."""
        key = (call_id, field)
        task = asyncio.create_task(self._transcribe(call_id, field, sealed, language,
                                                    tuple(flags)),
                                   name=f"transcribe-{call_id}-{field}")
        self._jobs[key] = task
        loop = asyncio.get_running_loop()
        task.add_done_callback(lambda t: loop.call_later(
            KEEP_RESULTS_SECONDS, lambda: self._forget(key, t)))

    def _forget(self, key: tuple[str, str], task: asyncio.Task[Result]) -> None:
        if self._jobs.get(key) is task:
            del self._jobs[key]

    def pending(self, call_id: str, field: str) -> bool:
        return (call_id, field) in self._jobs

    async def wait(self, call_id: str, field: str, seconds: float) -> Result | None:
        """The transcript's result within `seconds`; None when it is not done by then (or
        was never started). The transcription itself goes on either way."""
        task = self._jobs.get((call_id, field))
        if task is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(task), seconds)
        except (TimeoutError, asyncio.CancelledError):
            if task.cancelled() or not task.done():
                return None
            raise

    async def _transcribe(self, call_id: str, field: str, sealed: Path, language: str,
                          flags: tuple[Flag, ...]) -> Result:
        started = time.monotonic()
        lang = engines.primary(language)
        out: dict[str, Any] = {}
        status, note, flag = TranscriptStatus.DONE, "", None
        try:
            await self.ready()
            if self.unavailable is not None:
                status, note = TranscriptStatus.SKIPPED, self.unavailable
            elif lang not in self.languages:
                status, note = TranscriptStatus.SKIPPED, \
                    f"no {self.engine} model for {language} is installed"
            else:
                wav = await asyncio.to_thread(recordings.read, sealed)
                assert self._pool is not None
                hints = tuple(f.phrase for f in flags)
                out = await asyncio.get_running_loop().run_in_executor(
                    self._pool, worker.run, self.engine, self.model, wav, language, hints)
                flag = match(out["text"], flags) if flags else None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            status, note = TranscriptStatus.FAILED, type(exc).__name__
            log.warning("call %s: %s transcript failed (%s)", call_id, field,
                        type(exc).__name__)
        row = Transcript(
            call_id=call_id, field=field, status=status, language=language,
            engine=self.engine if status != TranscriptStatus.SKIPPED else "",
            engine_version=self.version if status == TranscriptStatus.DONE else "",
            text=out.get("text", ""), confidence=out.get("confidence"),
            audio_seconds=out.get("audio_seconds"), cpu_seconds=out.get("cpu_seconds"),
            wall_seconds=round(time.monotonic() - started, 3),
            red_flag_topic=flag.topic if flag else None, red_flag=flag.phrase if flag else "",
            note=note[:200], created_at=calls.now())
        try:
            await store(self.db, row)
        except Exception as exc:  # the call goes on; the recording is still there
            log.warning("call %s: %s transcript not stored (%s)", call_id, field,
                        type(exc).__name__)
        return Result(status, flag)


async def store(db: Database, row: Transcript) -> None:
    """Insert or replace the transcript of one recording (and note it on the timeline)."""
    async with db.session() as s:
        old = await s.scalar(select(Transcript).where(Transcript.call_id == row.call_id,
                                                      Transcript.field == row.field))
        if old is not None:
            await s.delete(old)
            await s.flush()
        s.add(row)
        call = await s.get(Call, row.call_id)
        if row.red_flag_topic and call is not None and not call.red_flag_topic:
            # Found after the call (or after its wait ran out): still flagged for the
            # clinician and the morning report. A flag is never cleared.
            call.red_flag_topic = row.red_flag_topic
    detail: dict[str, Any] = {"status": row.status, "engine": row.engine or None,
                              "seconds": row.wall_seconds}
    if row.red_flag_topic:
        detail["red_flag"] = row.red_flag_topic
    if row.note:
        detail["note"] = row.note
    await calls.add_event(db, row.call_id, f"transcript.{row.field}", **detail)


async def transcripts_of(db: Database, call_id: str) -> list[Transcript]:
    async with db.session() as s:
        rows = await s.scalars(select(Transcript).where(Transcript.call_id == call_id)
                               .order_by(Transcript.id))
        return list(rows.all())
