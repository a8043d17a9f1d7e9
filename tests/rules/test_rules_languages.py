"""A practice offering several languages: `languages:` (the first is the default), every
prompt the practice writes given in each of them, and errors that name the file, line,
key and the missing language. A single `language:` and plain prompt strings stay valid."""

from __future__ import annotations

from rules_helpers import EXAMPLES, NOW, base, load_data, load_text, practice_from

from ivr.rules import load_rules
from ivr.rules.prompts import default_menu_text
from ivr.texts import en, es

BOTH = ["en-US", "es-US"]


def test_the_example_practices_keep_one_language():
    res = load_rules(EXAMPLES, now=NOW)
    assert res.ok, [str(e) for e in res.errors]
    for p in res.rules.practices.values():
        assert p.offered == (p.language,)


def test_two_languages_each_get_their_built_in_prompts_and_menu(tmp_path):
    data = base()
    data["practice"]["languages"] = BOTH
    p = practice_from(tmp_path, data)
    assert (p.language, p.offered) == ("en-US", ("en-US", "es-US"))
    assert p.prompts is p.prompts_in("en-US") and p.prompts_in(None) is p.prompts
    spanish = p.prompts_in("es-US")
    assert spanish["ask_reason"].text == es.PROMPTS["ask_reason"]
    assert spanish["menu"].text == default_menu_text(p.menu.options, "es-US")
    assert p.prompts["ask_reason"].text == en.PROMPTS["ask_reason"]


def test_spanish_first_is_the_default(tmp_path):
    data = base()
    data["practice"]["languages"] = ["es-US", "en-US"]
    p = practice_from(tmp_path, data)
    assert p.language == "es-US" and p.prompts["greeting"].text == es.PROMPTS["greeting"]


def test_prompts_per_language_are_read(tmp_path):
    data = base()
    data["practice"]["languages"] = BOTH
    data["prompts"] = {"greeting": {"en-US": "Hello from {practice}.",
                                    "es-US": "Hola de {practice}."},
                       "ask_name": {"en-US": {"text": "Your name, please."},
                                    "es-US": "Su nombre, por favor."}}
    data["triage"]["prompt"] = {"en-US": "Press 1 or 4.", "es-US": "Oprima 1 o 4."}
    p = practice_from(tmp_path, data)
    assert p.prompts_in("es-US")["greeting"].text == "Hola de {practice}."
    assert p.prompts_in("en-US")["ask_name"].text == "Your name, please."
    assert p.prompts_in("es-US")["menu"].text == "Oprima 1 o 4."
    assert p.prompts["menu"].text == "Press 1 or 4."


def test_a_per_language_mapping_with_one_language_is_fine(tmp_path):
    data = base()
    data["practice"]["language"] = "es-US"
    data["prompts"] = {"greeting": {"es-US": "Hola."}, "ask_name": "Su nombre."}
    p = practice_from(tmp_path, data)
    assert (p.prompts["greeting"].text, p.prompts["ask_name"].text) == ("Hola.", "Su nombre.")


def test_a_missing_language_is_an_error_naming_it_and_the_key(tmp_path):
    text = """practice:
  id: t
  name: T
  timezone: America/New_York
  country: US
  languages: [en-US, es-US]
  dids: ["+16175550300"]
prompts:
  greeting: Hello.
  ask_name:
    en-US: Your name.
  ask_reason:
    en-US: Why?
    es-US: "{unknown} por que"
    fr-FR: Pourquoi?
triage:
  keys: {1: urgent}
  default: urgent
  invalid_prompt:
    es-US: No.
on_call:
  clinicians:
    - {id: a, name: A, role: nurse, phone: "+16175550321"}
  escalation:
    - {clinician: a}
"""
    res = load_text(tmp_path, text)
    assert not res.ok
    found = {e.key: e for e in res.errors}
    assert set(found) == {"prompts.greeting", "prompts.ask_name.es-US",
                          "prompts.ask_reason.es-US", "prompts.ask_reason.fr-FR",
                          "triage.invalid_prompt.en-US"}, [str(e) for e in res.errors]
    once = found["prompts.greeting"]
    assert (once.line, once.column) == (9, 13)
    assert "no es-US text for prompts.greeting" in once.message
    missing = found["prompts.ask_name.es-US"]
    assert missing.line == 11 and "no es-US text for prompts.ask_name" in missing.message
    assert str(missing).startswith(f"{missing.file}:11:")
    assert "unknown placeholder" in found["prompts.ask_reason.es-US"].message
    assert found["prompts.ask_reason.fr-FR"].line == 15
    assert found["triage.invalid_prompt.en-US"].line == 20


def test_a_language_not_offered_is_an_error(tmp_path):
    data = base()
    data["prompts"] = {"greeting": {"en-US": "Hello.", "es-US": "Hola."}}
    res = load_data(tmp_path, data)
    [err] = res.errors
    assert err.key == "prompts.greeting.es-US"
    assert "es-US is not a language this practice offers" in err.message


def test_bad_language_lists(tmp_path):
    for languages, key, words in (
            (["en-US", "en-US"], "practice.languages[1]", "listed twice"),
            (["en-US", "de-DE"], "practice.languages[1]", "not a known value"),
            ([], "practice.languages", "at least one language"),
            ("en-US", "practice.languages", "not a list")):
        data = base()
        data["practice"]["languages"] = languages
        res = load_data(tmp_path, data)
        assert [(e.key, words in e.message) for e in res.errors] == [(key, True)], \
            [str(e) for e in res.errors]


def test_language_and_languages_together_is_an_error(tmp_path):
    data = base()
    data["practice"]["language"] = "en-US"
    data["practice"]["languages"] = BOTH
    res = load_data(tmp_path, data)
    [err] = res.errors
    assert err.key == "practice.languages" and "not both" in err.message
