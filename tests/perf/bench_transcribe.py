"""Benchmark (a script, not a test): the speech engines on telephone intake utterances.

Run: .venv/bin/python -m tests.perf.bench_transcribe [--quick]
Prints numbers only; asserts nothing. The corpus is made here: short intake sentences
(names, reasons with numbers, medications, symptoms; some with a red flag) spoken by
espeak-ng with several voices and speeds, then (sox) band-limited to the telephone's
300-3400 Hz at 8 kHz with pink noise mixed in, as a recording from the PBX would be.
For each engine and setting: word error rate, red-flag recall and precision, CPU
seconds per second of audio (one thread), side by side in the same run. The corpus is
synthetic speech: read the numbers as a comparison, not as what people will get.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ivr.transcribe.audio import Samples, decode  # noqa: E402
from ivr.transcribe.engines import Engine, Heard  # noqa: E402
from ivr.transcribe.redflags import flags_for, match, words  # noqa: E402

# (sentence, has a red flag)
CORPUS = [
    ("my name is alex smith", False),
    ("this is maria garcia calling about my son", False),
    ("my daughter has had a fever of one hundred and three since this afternoon", False),
    ("he has been vomiting for two days and cannot keep water down", False),
    ("i need a refill of her albuterol inhaler", False),
    ("she has a rash on her arms and an ear ache", False),
    ("my baby is not breathing right", True),
    ("my son is having trouble breathing", True),
    ("he had a seizure about ten minutes ago", True),
    ("my father has chest pain and his arm is numb", True),
    ("i think she took too many pills", True),
    ("he will not wake up and he feels very hot", True),
    ("my newborn has a fever of one hundred and one", True),
    ("i would like to move my appointment to next tuesday", False),
    ("he takes amoxicillin five hundred milligrams twice a day", False),
    ("she fell and her wrist is swollen", False),
]
VOICES = [("en-us", 160), ("en-us+f3", 175)]  # more voices: more minutes on a shared box
NOISE_VOLUME = 0.02  # pink noise, about 25 dB below the speech
KWS_THRESHOLDS = ("1e-10", "1e-20", "1e-30")

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
        "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
        "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def spoken(n: int) -> list[str]:
    """103 -> one hundred and three (how the references are written)."""
    if n < 20:
        return [ONES[n]]
    if n < 100:
        return [TENS[n // 10]] + ([ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        rest = spoken(n % 100) if n % 100 else []
        return [ONES[n // 100], "hundred"] + (["and", *rest] if rest else [])
    return [str(n)]


def normal_words(text: str) -> list[str]:
    out: list[str] = []
    for w in words(text):
        out.extend(spoken(int(w)) if w.isdigit() else [w])
    return out


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def make_corpus(folder: Path, voices: list[tuple[str, int]]) -> list[tuple[str, bool, Samples]]:
    out = []
    for i, (text, flagged) in enumerate(CORPUS):
        for voice, speed in voices:
            wide, band, noise, tel = (folder / f"{i}-{voice}-{n}.wav"
                                      for n in ("wide", "band", "noise", "tel"))
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wide),
                            "--stdin"], input=text.encode(), check=True, capture_output=True)
            subprocess.run(["sox", str(wide), "-r", "8000", "-c", "1", "-b", "16", str(band),
                            "sinc", "300-3400"], check=True, capture_output=True)
            seconds = subprocess.run(["soxi", "-D", str(band)], check=True,
                                     capture_output=True, text=True).stdout.strip()
            # -R: the same noise on every run, so runs compare.
            subprocess.run(["sox", "-R", "-n", "-r", "8000", "-c", "1", "-b", "16", str(noise),
                            "synth", seconds, "pinknoise", "vol", str(NOISE_VOLUME)],
                           check=True, capture_output=True)
            subprocess.run(["sox", "-m", str(band), str(noise), "-b", "16", str(tel)],
                           check=True, capture_output=True)
            out.append((text, flagged, decode(tel.read_bytes())))
    return out


class KeywordSpotter:
    """PocketSphinx in keyword-spotting mode: no transcript, only the red-flag phrases it
    spots (a kws list, one phrase and threshold a line). Measured here only: phrases
    whose words the packaged dictionary lacks ("cant") cannot be listed and are left
    out, which the printed count shows."""

    def __init__(self, phrases: tuple[str, ...], threshold: str, folder: Path) -> None:
        import pocketsphinx

        from ivr.transcribe.audio import ENGINE_RATE

        self._decoder = pocketsphinx.Decoder(samprate=ENGINE_RATE, loglevel="FATAL")
        known = sorted({" ".join(words(p)) for p in phrases
                        if all(self._decoder.lookup_word(w) for w in words(p))})
        self.listed = len(known)
        kws = folder / f"kws-{threshold}.txt"
        kws.write_text("".join(f"{p} /{threshold}/\n" for p in known))
        self._decoder.add_kws("redflags", str(kws))
        self._decoder.activate_search("redflags")

    def transcribe(self, audio: Samples, language: str, hints: object) -> Heard:
        d = self._decoder
        d.start_utt()
        d.process_raw(audio.pcm16(), full_utt=True)
        d.end_utt()
        return Heard(" ".join(seg.word for seg in d.seg() or ()), 0.0)


def variants() -> list[tuple[str, Callable[[], Engine]]]:
    out: list[tuple[str, Callable[[], Engine]]] = []
    try:
        from ivr.transcribe.whisper import WhisperEngine, WhisperOptions

        # Beam 5 measured about the same as greedy here (WER within 1 point): left out.
        out += [
            ("whisper tiny.en (default)", lambda: WhisperEngine()),
            ("whisper + intake prompt", lambda: WhisperEngine(None, WhisperOptions(prompt=True))),
            ("whisper, no hotwords", lambda: WhisperEngine(None, WhisperOptions(hotwords=False))),
        ]
    except ImportError:
        print("faster-whisper is not installed: skipped")
    try:
        from ivr.transcribe.sphinx import SphinxEngine

        out.append(("pocketsphinx en-us", lambda: SphinxEngine()))
    except ImportError:
        print("pocketsphinx is not installed: skipped")
    return out


def spotters(folder: Path, phrases: tuple[str, ...]
             ) -> list[tuple[str, Callable[[], KeywordSpotter]]]:
    """Keyword spotting at a few thresholds (lower: more hits, more false alarms)."""
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return []
    return [(f"pocketsphinx kws {t}", lambda t=t: KeywordSpotter(phrases, t, folder))
            for t in KWS_THRESHOLDS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one voice, two settings")
    parser.add_argument("--only", choices=("pocketsphinx",),
                        help="only this engine's rows (its full decoding is the baseline)")
    args = parser.parse_args()
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        print("espeak-ng and sox are needed to make the corpus: skipped")
        return
    voices = VOICES[:1] if args.quick else VOICES
    flags = flags_for("en-US")
    hints = tuple(f.phrase for f in flags)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_corpus(Path(tmp), voices)
    audio_s = sum(s.seconds for _, _, s in corpus)
    print(f"corpus: {len(corpus)} utterances ({len(CORPUS)} sentences x {len(voices)} "
          f"voices), {audio_s:.0f} s of 8 kHz telephone audio with noise")
    print(f"{'engine / setting':30} {'WER':>6} {'flag recall':>11} {'precision':>9} "
          f"{'CPU s/audio s':>13} {'load s':>6}")
    chosen: list[tuple[str, Callable[[], Engine | KeywordSpotter]]] = list(variants())
    if args.quick:
        chosen = [chosen[0], chosen[-1]]
    if args.only:
        chosen = [(label, make) for label, make in chosen if label.startswith(args.only)]
    kws_dir = Path(tempfile.mkdtemp())
    chosen += spotters(kws_dir, hints)
    for label, make in chosen:
        started = time.process_time()
        engine = make()
        load = time.process_time() - started
        spotting = isinstance(engine, KeywordSpotter)
        errors = total = tp = fp = fn = 0
        cpu = 0.0
        for text, flagged, samples in corpus:
            t0 = time.process_time()
            heard = engine.transcribe(samples, "en-US", hints)
            cpu += time.process_time() - t0
            ref = normal_words(text)
            errors += edit_distance(ref, normal_words(heard.text))
            total += len(ref)
            hit = match(heard.text, flags) is not None
            tp, fp, fn = tp + (hit and flagged), fp + (hit and not flagged), \
                fn + (flagged and not hit)
        recall = tp / (tp + fn) if tp + fn else 0.0
        precision = tp / (tp + fp) if tp + fp else 0.0
        wer = "-" if spotting else f"{errors / total:.1%}"  # spotting: no transcript
        print(f"{label:30} {wer:>6} {recall:11.0%} {precision:9.0%} "
              f"{cpu / audio_s:13.3f} {load:6.1f}")
        if isinstance(engine, KeywordSpotter):
            print(f"{'':30} ({engine.listed} of {len(hints)} phrases in its dictionary)")
    shutil.rmtree(kws_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
