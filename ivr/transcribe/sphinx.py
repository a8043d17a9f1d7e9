"""PocketSphinx as an engine: the en-US model its wheel ships, or a model folder.

The packaged acoustic model is a 16 kHz one (its feat.params fix the filter bank up to
6.8 kHz, so it cannot be run at 8 kHz): telephone audio is resampled to 16 kHz first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ivr.transcribe.audio import ENGINE_RATE, Samples
from ivr.transcribe.engines import MODEL_SETTING, EngineUnavailable, Heard, primary


class SphinxEngine:
    name = "pocketsphinx"

    def __init__(self, model: Path | None = None) -> None:
        import pocketsphinx

        self._ps = pocketsphinx
        config: dict[str, object] = {"samprate": ENGINE_RATE, "loglevel": "FATAL"}
        if model is not None:  # an operator's model: acoustic folder, dictionary, LM
            dicts, lms = sorted(model.glob("*.dict")), sorted(model.glob("*.lm.bin"))
            hmm = next((p for p in sorted(model.iterdir()) if (p / "mdef").is_file()), None)
            if hmm is None or not dicts or not lms:
                raise EngineUnavailable(f"{MODEL_SETTING}={str(model)!r}: expected an "
                                        "acoustic model folder, a .dict and a .lm.bin there")
            config.update(hmm=str(hmm), dict=str(dicts[0]), lm=str(lms[0]))
        try:
            self._decoder = pocketsphinx.Decoder(**config)
        except RuntimeError:
            raise EngineUnavailable(f"{MODEL_SETTING}: the PocketSphinx model does not load"
                                    ) from None
        label = "en-us (packaged)" if model is None else model.name
        version = getattr(pocketsphinx, "__version__", "") or _dist_version()
        self.version = f"pocketsphinx {version}, {label}"

    def languages(self) -> frozenset[str]:
        return frozenset({"en"})  # no other language ships in a package we could verify

    def transcribe(self, audio: Samples, language: str, hints: Sequence[str]) -> Heard:
        if primary(language) not in self.languages():
            raise ValueError(f"no {language} model")
        d = self._decoder
        d.start_utt()
        d.process_raw(audio.pcm16(), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        if hyp is None:
            return Heard("", 0.0)
        words = [s.word for s in d.seg() if not s.word.startswith(("<", "["))]
        text = " ".join(w.split("(")[0] for w in words)  # "read(2)": a variant of "read"
        # The posterior probability of the best path, as the decoder computes it.
        return Heard(text, round(min(max(float(hyp.prob), 0.0), 1.0), 3))


def _dist_version() -> str:
    from importlib.metadata import version

    return version("pocketsphinx")
