"""red_flags and language in a practice file: phrases, defaults, the wait, the languages
offered; every error names file, line, column and key."""

from __future__ import annotations

from rules_helpers import base, load_data, load_text, practice_from

from ivr.rules.prompts import default_menu_text
from ivr.texts import es


def test_defaults_when_left_out(tmp_path):
    p = practice_from(tmp_path, base())
    assert (p.red_flags.phrases, p.red_flags.defaults, p.red_flags.wait_seconds) == ((), True, 6)
    assert p.language == "en-US"


def test_a_practice_list_is_read(tmp_path):
    data = base()
    data["red_flags"] = {"phrases": ["blue lips", "  High fever in a newborn "],
                         "defaults": False, "wait_seconds": 10}
    p = practice_from(tmp_path, data)
    assert p.red_flags.phrases == ("blue lips", "High fever in a newborn")
    assert p.red_flags.defaults is False and p.red_flags.wait_seconds == 10


def test_bad_phrases_are_errors_with_their_place(tmp_path):
    data = base()
    data["red_flags"] = {"phrases": ["ok phrase", "!!", "OK  Phrase.", 7, "x" * 81],
                         "wait_seconds": 99}
    res = load_data(tmp_path, data)
    assert not res.ok
    found = {(e.key, str(e.value)): e for e in res.errors}
    assert set(found) == {("red_flags.phrases[1]", "!!"),
                          ("red_flags.phrases[2]", "OK  Phrase."),
                          ("red_flags.phrases[3]", "7"),
                          ("red_flags.phrases[4]", "x" * 81),
                          ("red_flags.wait_seconds", "99")}, [str(e) for e in res.errors]
    twice = found[("red_flags.phrases[2]", "OK  Phrase.")]
    assert "listed twice" in twice.message and twice.line > 1 and twice.column > 1
    assert str(twice).startswith(f"{twice.file}:{twice.line}:{twice.column}")


def test_unknown_key_and_unsupported_language(tmp_path):
    res = load_text(tmp_path, _yaml_with("  language: fr-FR\n", "red_flags:\n  phrase: [a]\n"))
    keys = {e.key: e for e in res.errors}
    assert "practice.language" in keys and "en-US, es-US" in keys["practice.language"].expected
    assert "red_flags.phrase" in keys
    assert keys["practice.language"].line == 6


def test_spanish_practice_gets_spanish_default_prompts_and_menu(tmp_path):
    data = base()
    data["practice"]["language"] = "es-US"
    p = practice_from(tmp_path, data)
    assert p.prompts["ask_reason"].text == es.PROMPTS["ask_reason"]
    assert p.prompts["menu"].text == default_menu_text(p.menu.options, "es-US")
    assert p.prompts["menu"].text.startswith("Para un problema urgente")
    assert "oprima 4" in p.prompts["menu"].text


def _yaml_with(practice_extra: str, top_extra: str) -> str:
    return ("practice:\n  id: t\n  name: T\n  timezone: America/New_York\n  country: US\n"
            + practice_extra + '  dids: ["+16175550300"]\n'
            "triage:\n  keys: {1: urgent}\n  default: urgent\n"
            "on_call:\n  clinicians:\n    - {id: a, name: A, role: nurse, "
            'phone: "+16175550321"}\n  escalation:\n    - {clinician: a}\n' + top_extra)
