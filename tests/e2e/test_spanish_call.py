"""A Spanish caller through the real PBX: the practice offers English and Spanish, the
reacting caller hears the bilingual choice, presses 2, and goes through the whole intake
(caller ID accepted, date of birth keyed and confirmed, name and reason said) and the
menu (4, routine). Every prompt file played after the choice is one of the Spanish ones
(by its file name: the hash of its text and voice, as the controller logs it) and none is
English; the call stores es-US and the timeline says how the language was chosen."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from harness import wait_for
from oncall_helpers import call_of, practice_yaml, restore, use_rules
from support.plans import DOB_KEYS, answer, choose, happy, voices

from ivr.caller.plan import AwaitEnd, CallPlan
from ivr.flows.speech import PromptLibrary
from ivr.rules import load_rules
from ivr.rules.model import Practice
from ivr.texts import LANGUAGES, en, es

pytestmark = pytest.mark.pbx

DID = "+16175550481"
CALLER = "+16175550482"
NURSE = "+16175550483"
BILINGUAL = """  languages: [en-US, es-US]
"""
PROMPTS = """prompts:
  greeting:
    en-US: Hello.
    es-US: Hola.
  emergency_notice:
    en-US: Notice.
    es-US: Aviso.
"""


def bilingual_yaml() -> str:
    text = practice_yaml("bilingual-e2e", DID, [("n1", NURSE, 20)],
                         collect="[callback, dob, name, reason]")
    text = text.replace("  language: en-US\n", BILINGUAL)
    return text.replace("prompts:\n  greeting: Hello.\n  emergency_notice: Notice.\n", PROMPTS)


@pytest.fixture
def bilingual(stack, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bilingual.yaml").write_text(bilingual_yaml())
    use_rules(stack, rules)
    try:
        yield stack, rules
        wait_for(lambda: stack.channels() == 0, 60, "no channels left in Asterisk")
    finally:
        if stack.channels():
            stack.hangup_all()
        restore(stack)


def prompt_names(practice: Practice, language: str, folder: Path) -> set[str]:
    """The file names of every prompt the caller may hear in `language`: the practice's
    prompts and the controller's own sentences (named by text and voice)."""
    lib = PromptLibrary(folder, lambda p: str(p), folder / "cache")
    items = [i for pid in practice.prompts_in(language)
             for i in lib.items(practice, pid, language=language)]
    texts = LANGUAGES[language.split("-")[0]]
    items += [lib.flow(key, language) for key, text in texts.FLOW.items() if "{" not in text]
    return {Path(getattr(i, "path", "")).name for i in items} - {""}


def played(log: str, uniqueid: str) -> list[str]:
    """The prompt files a call played, in order, from the controller's debug log."""
    marker = f"{uniqueid}: prompt "
    return [line.split(marker, 1)[1].strip() for line in log.splitlines() if marker in line]


def test_a_spanish_caller_hears_only_spanish_after_pressing_2(bilingual, tmp_path):
    stack, rules = bilingual
    v = voices(stack)
    plan = CallPlan(caller_id=CALLER,
                    steps=(*answer("2"), *happy(v), *choose("4"), AwaitEnd(120)))
    report = stack.place(plan, DID, tmp_path / "call")
    assert report.ok, report.explain()
    call = wait_for(lambda: (c := call_of(stack, DID)) is not None and c["ended_at"] and c,
                    90, "the call to end")
    kinds = [e["kind"] for e in call["timeline"]]
    assert call["language"] == "es-US", kinds
    chosen = next(e for e in call["timeline"] if e["kind"] == "language.chosen")
    assert chosen["detail"] == {"language": "es-US", "result": "chosen"}
    assert call["disposition"] == "routine", kinds
    intake = call["intake"]
    assert intake["dob"]["confirmed"] and intake["dob"]["value"] == (
        f"{DOB_KEYS[4:]}-{DOB_KEYS[:2]}-{DOB_KEYS[2:4]}")
    assert intake["callback"]["confirmed"] and intake["callback"]["value"] == CALLER
    assert {"name", "reason"} <= set(intake)
    assert call["caller_told"].startswith("Gracias."), call["caller_told"]

    res = load_rules(rules, now=datetime.now(UTC))
    practice = res.rules.practices["bilingual-e2e"]
    spanish = prompt_names(practice, "es-US", tmp_path / "es")
    english = prompt_names(practice, "en-US", tmp_path / "en")
    names = played(stack.controller_log(), call["uniqueid"])
    detail = f"played {names}; timeline {kinds}"
    lib = PromptLibrary(tmp_path / "c", lambda p: str(p), tmp_path / "c" / "cache")
    choice = [Path(p.path).name for p in lib.language_choice(practice.offered)]
    assert names[:2] == choice, detail  # "For English, press 1. Para español, oprima 2."
    after = names[2:]
    assert after and not set(after) & english, detail
    # Asterisk's own sounds aside (named by what they say, not by a hash of a text:
    # "today", the digits of a number, the month and year of a date read back; found in
    # the channel's language), every file is one of the Spanish prompts.
    assert {n for n in after if re.fullmatch(r"[0-9a-f]{24}", n)} <= spanish, detail
    expected = [lib.items(practice, pid, language="es-US")[0] for pid in
                ("greeting", "emergency_notice", "ask_dob", "ask_name", "ask_reason", "menu")]
    expected += [lib.flow("offer_caller_id", "es-US"), lib.flow("you_entered", "es-US")]
    assert {Path(i.path).name for i in expected} <= set(after), detail
    assert es.PROMPTS["ask_dob"] != en.PROMPTS["ask_dob"]  # the sets above do differ
    # Asterisk said the number and the date in Spanish (its es core sounds, the Spanish
    # date format) without a failed playback: a missing sound would be logged here.
    assert "could not be played" not in stack.controller_log().split("controller stopping")[-1]
