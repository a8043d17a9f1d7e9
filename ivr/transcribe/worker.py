"""What runs inside a transcription worker process: one engine, loaded on first use.

Only picklable values cross the process boundary: the recording's WAV bytes in, a dict
out. The plaintext audio exists in the worker's memory only, never on disk.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from ivr.transcribe import registry
from ivr.transcribe.audio import decode
from ivr.transcribe.engines import Engine

_loaded: dict[tuple[str, str], Engine] = {}


PARENT_CHECK_SECONDS = 2.0


#: The workers' niceness (Linux: 0 is the default, 19 the lowest priority).
WORKER_NICE = 10


def watch_parent(parent: int) -> None:
    """The pool's initializer: this worker below the calls' priority (WORKER_NICE), and
    ended when the controller is gone.

    A controller killed outright (SIGKILL, a crash) cannot shut its pool down, and a
    worker blocked on its queue would live on holding a model in memory: a thread here
    notices the parent's end (the worker is re-parented) and exits the process.
    """
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    # Transcripts can wait; calls cannot: a burst of recordings keeps the workers busy
    # for minutes, and they must not take the cores from Asterisk's audio and the
    # controller's prompts. Set before the engine starts its threads, which inherit it.
    os.setpriority(os.PRIO_PROCESS, 0, max(WORKER_NICE, os.getpriority(os.PRIO_PROCESS, 0)))
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _engine(name: str, model: str | None) -> Engine:
    key = (name, model or "")
    if key not in _loaded:
        _loaded[key] = registry.load(name, Path(model) if model else None)
    return _loaded[key]


def describe(name: str, model: str | None) -> dict[str, Any]:
    """Load the engine (the warm-up at start); its version and languages."""
    engine = _engine(name, model)
    return {"engine": engine.name, "version": engine.version,
            "languages": sorted(engine.languages())}


def run(name: str, model: str | None, wav: bytes, language: str,
        hints: tuple[str, ...]) -> dict[str, Any]:
    """Transcribe one recording; the text, a confidence and the CPU time it took."""
    engine = _engine(name, model)
    started = time.process_time()
    audio = decode(wav)
    heard = engine.transcribe(audio, language, hints)
    return {"text": heard.text, "confidence": heard.confidence,
            "audio_seconds": round(audio.seconds, 2),
            "cpu_seconds": round(time.process_time() - started, 3)}
