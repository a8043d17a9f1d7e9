"""A practice with `language: es-US`: every prompt a caller hears is made from the Spanish
texts with espeak-ng's Spanish voice (prepared ahead), the clinician is told the caller's
language in English, and English practices keep their files' old names."""

from __future__ import annotations

import shutil
import wave
from dataclasses import replace
from pathlib import Path

import pytest

from ivr.flows.speech import PromptLibrary, language_sentence
from ivr.pbx import prompts as tts
from ivr.rules import load_rules
from ivr.rules.model import RuleSet
from ivr.texts import en, es

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    from datetime import UTC, datetime

    res = load_rules(REPO / "routing_rules", now=datetime(2026, 11, 1, tzinfo=UTC))
    assert res.ok
    assert res.rules is not None
    return res.rules


def test_spanish_practice_prompts_use_the_spanish_texts_and_voice(rules, tmp_path):
    sunny = rules.practices["sunny-pediatrics"]
    # The built-in prompts only.
    spanish = replace(sunny, language="es-US", languages=("es-US",), prompts={})
    lib = PromptLibrary(tmp_path / "sounds", lambda p: str(p), tmp_path / "cache")
    [item] = lib.items(spanish, "ask_reason")
    assert Path(item.path).name == tts.cache_key(es.PROMPTS["ask_reason"], es.VOICE)
    assert lib.flow("no_voice", "es-US").path.endswith(
        tts.cache_key(es.FLOW["no_voice"], es.VOICE))
    # English stays as it was (old cache names: no voice in the key).
    assert lib.flow("no_voice").path.endswith(tts.cache_key(en.FLOW["no_voice"]))
    assert language_sentence("es-US") == "The caller speaks Spanish."


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                    reason="espeak-ng and sox make prompts")
def test_prepared_ahead_in_spanish(rules, tmp_path):
    sunny = rules.practices["sunny-pediatrics"]
    spanish = replace(sunny, language="es-US", languages=("es-US",), prompts={})
    lib = PromptLibrary(tmp_path / "sounds", lambda p: str(p), tmp_path / "cache", workers=2)
    small = RuleSet({spanish.id: spanish}, "d", {}, {})
    lib.prepare_rules(small)
    made = lib.tts_file(es.FLOW["redflag_offer"], es.VOICE)
    assert made.exists()
    with wave.open(str(made)) as w:
        assert (w.getframerate(), w.getnchannels()) == (8000, 1)
    assert lib.tts_file(es.PROMPTS["ask_reason"], es.VOICE).exists()
    assert lib.tts_file(language_sentence("es-US")).exists()
    assert not lib.tts_file(en.FLOW["screen_language"]).exists()  # never the raw template
