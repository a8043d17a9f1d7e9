"""A practice offering English and Spanish: the caller's first key picks the language
(no key or a wrong one: the default), `ivr rules simulate` reads that key as the live
call does, and every prompt, read-back and "what happens next" sentence is then in the
chosen language (texts, voices, Asterisk's formats)."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from ivr.agi.protocol import AgiReply
from ivr.flows import language as choice
from ivr.flows.decide import decide
from ivr.flows.intake import dob_item, dob_readback
from ivr.flows.session import Session
from ivr.flows.speech import PlayFile, PromptLibrary, SayTime, choice_lines, say_time
from ivr.pbx import prompts as tts
from ivr.records import calls
from ivr.rules import load_rules
from ivr.rules.languages import choose
from ivr.rules.model import Practice, RuleSet
from ivr.rules.simulate import format_text, simulate
from ivr.texts import en, es

EVENING = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)  # Monday 21:30 in Boston: closed
DID = "+16175550700"
YAML = f"""practice:
  id: bilingual
  name: Clinica Bilingue
  timezone: America/New_York
  country: US
  languages: [en-US, es-US]
  dids: ["{DID}"]
hours:
  monday: [08:00-17:00]
prompts:
  greeting:
    en-US: Thank you for calling {{practice}}.
    es-US: Gracias por llamar a {{practice}}.
triage:
  keys: {{1: urgent, 4: routine}}
  default: urgent
on_call:
  clinicians:
    - {{id: a, name: A, role: nurse, phone: "+16175550721"}}
  escalation:
    - {{clinician: a}}
"""


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "b.yaml").write_text(YAML)
    res = load_rules(tmp_path / "r", now=EVENING)
    assert res.ok, [str(e) for e in res.errors]
    assert res.rules is not None
    return res.rules


@pytest.fixture
def practice(rules: RuleSet) -> Practice:
    return rules.practices["bilingual"]


def test_the_key_picks_the_language_and_anything_else_is_the_default():
    offered = ("en-US", "es-US")
    assert choose(offered, "1") == ("en-US", "chosen")
    assert choose(offered, "2") == ("es-US", "chosen")
    assert choose(offered, None) == ("en-US", "no_input")
    assert choose(offered, "3") == ("en-US", "invalid")
    assert choose(offered, "#") == ("en-US", "invalid")


def test_simulate_reads_the_first_key_as_the_language(rules):
    res = simulate(rules, DID, None, "+16175550171", EVENING, "24")
    assert res["language"] == "es-US"
    assert res["language_choice"] == {"key": "2", "language": "es-US", "result": "chosen"}
    ids = [p["id"] for p in res["prompts"]]
    assert ids[0] == "language_choice" and ids[1] == "greeting"
    texts = {p["id"]: p["text"] for p in res["prompts"]}
    assert texts["language_choice"] == "For English, press 1. Para español, oprima 2."
    assert texts["greeting"] == "Gracias por llamar a Clinica Bilingue."
    assert texts["ask_reason"] == es.PROMPTS["ask_reason"]
    assert texts["menu"].startswith("Para un problema urgente")
    assert res["disposition"] == "routine" and res["menu_trace"][0]["key"] == "4"
    assert res["caller_told"].startswith("Gracias.")
    # The time in the record is in the caller's language too, not "8:00 AM tomorrow".
    assert "después de las " in res["caller_told"] and " AM" not in res["caller_told"]
    assert "Language:   key 2 -> es-US (chosen)" in format_text(res)


@pytest.mark.parametrize("keys", ["", ".4", "94"])
def test_simulate_no_or_a_wrong_language_key_is_english(rules, keys):
    res = simulate(rules, DID, None, "+16175550171", EVENING, keys)
    assert res["language"] == "en-US"
    texts = {p["id"]: p["text"] for p in res["prompts"]}
    assert texts["greeting"] == "Thank you for calling Clinica Bilingue."
    assert texts["ask_reason"] == en.PROMPTS["ask_reason"]
    assert res["disposition"] == ("urgent" if keys == "" else "routine")


def test_a_one_language_practice_has_no_choice_and_the_keys_are_the_menus():
    repo = Path(__file__).resolve().parents[2]
    res = load_rules(repo / "routing_rules", now=EVENING)
    sim = simulate(res.rules, "+16175550100", None, "+16175550171", EVENING, "4")
    assert sim["language_choice"] is None and sim["language"] == "en-US"
    assert sim["prompts"][0]["id"] == "greeting" and sim["disposition"] == "routine"


def test_prompts_in_the_chosen_language_and_voice(practice, tmp_path):
    lib = PromptLibrary(tmp_path / "sounds", lambda p: str(p), tmp_path / "cache")
    [spanish] = lib.items(practice, "ask_reason", language="es-US")
    assert Path(spanish.path).name == tts.cache_key(es.PROMPTS["ask_reason"], es.VOICE)
    [english] = lib.items(practice, "ask_reason")
    assert Path(english.path).name == tts.cache_key(en.PROMPTS["ask_reason"])
    [hola] = lib.items(practice, "greeting", language="es-US")
    assert Path(hola.path).name == tts.cache_key("Gracias por llamar a Clinica Bilingue.",
                                                 es.VOICE)
    assert choice_lines(practice.offered) == [("For English, press 1.", en.VOICE),
                                              ("Para español, oprima 2.", es.VOICE)]
    lines = lib.language_choice(practice.offered)
    assert [Path(p.path).name for p in lines] == [
        tts.cache_key("For English, press 1."), tts.cache_key("Para español, oprima 2.",
                                                              es.VOICE)]


def test_read_backs_in_spanish_use_asterisks_spanish_formats():
    dob = date(1990, 1, 2)
    assert dob_item(dob).fmt == "BdY"
    assert dob_item(dob, "es-US").fmt == "d'digits/es-de'B'digits/es-de'Y"
    # Said as Asterisk's own files (one Read with the confirmation), in each order.
    assert [f.path for f in dob_readback(dob)] == [
        "digits/mon-0", "digits/h-2", "digits/19", "digits/90"]
    assert [f.path for f in dob_readback(dob, "es-US")] == [
        "digits/2", "digits/es-de", "digits/mon-0", "digits/es-de", "digits/thousand",
        "digits/900", "digits/90"]
    later = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
    items = say_time(later, "America/New_York", EVENING, "es-US")
    assert [i.fmt for i in items if isinstance(i, SayTime)] == ["IMp", "Ad'digits/es-de'B"]


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                    reason="espeak-ng and sox make prompts")
def test_both_languages_are_prepared_ahead(rules, tmp_path):
    lib = PromptLibrary(tmp_path / "sounds", lambda p: str(p), tmp_path / "cache", workers=2)
    lib.prepare_rules(rules)
    assert lib.tts_file("Para español, oprima 2.", es.VOICE).exists()
    assert lib.tts_file("For English, press 1.").exists()
    assert lib.tts_file("Gracias por llamar a Clinica Bilingue.", es.VOICE).exists()
    assert lib.tts_file(es.FLOW["you_entered"], es.VOICE).exists()
    assert lib.tts_file(es.PROMPTS["ask_dob"], es.VOICE).exists()
    assert lib.tts_file(en.PROMPTS["ask_dob"]).exists()


class Channel:
    """A fake AGI channel: plays nothing, presses `key` (or nothing) once asked."""

    def __init__(self, key: str | None) -> None:
        self.key, self.heard, self.variables = key, [], {}
        self.uniqueid, self.hung_up = "1700000000.2", False

    async def command(self, name: str, *args: object, **_kw: object) -> AgiReply:
        if name == "EXEC" and args[0] == "Read":  # the whole question, then its key
            self.heard += str(args[1]).split(",")[1].split("&")
            self.read = await self.wait_for_digit(0)
            return AgiReply(200, "0")
        self.heard.append(str(args[0]))
        if name == "GET OPTION":  # the last prompt, then the key
            key = await self.wait_for_digit(int(str(args[2])))
            return AgiReply(200, str(ord(key)) if key else "0")
        return AgiReply(200, "0")

    async def exec(self, application: str, options: str = "", **kw: object) -> AgiReply:
        return await self.command("EXEC", application, options, **kw)

    async def get_full_variable(self, expression: str) -> str | None:
        assert expression == "${READSTATUS}:${IVR_KEYS}", expression
        return f"OK:{self.read}" if self.read else "TIMEOUT:"

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        key, self.key = self.key, None
        return key

    async def set_variable(self, name: str, value: str, **_kw: object) -> None:
        self.variables[name] = value


@pytest.mark.parametrize(("key", "language", "result"), [
    ("2", "es-US", "chosen"), ("1", "en-US", "chosen"), (None, "en-US", "no_input"),
    ("7", "en-US", "invalid")])
async def test_the_live_choice_is_stored_and_sets_asterisks_language(
        rules, db, tmp_path, key, language, result):
    channel = Channel(key)
    lib = PromptLibrary(tmp_path / "sounds", lambda p: p.name, tmp_path / "cache")
    lib._file_item = lambda text, voice=en.VOICE: PlayFile(  # type: ignore[method-assign]
        lib.tts_file(text, voice).name)  # no speech made: the names are what counts
    services = SimpleNamespace(db=db, speech=lib)
    call_id = await calls.start_call(db, uniqueid="u1", node="n", dialled=DID,
                                     forwarded_from="", caller="", started_at=calls.now())
    s = Session(channel, call_id, services, decide(rules, DID, "", EVENING),  # type: ignore[arg-type]
                EVENING, ("US",), None)
    await choice.run(s)
    await s.settle()  # its writes are committed while the next prompt plays
    assert s.language == language
    assert channel.heard == [p.path for p in lib.language_choice(("en-US", "es-US"))]
    assert channel.variables == ({"CHANNEL(language)": "es"} if language == "es-US" else {})
    assert await calls.language_of(db, call_id) == language
    shown = await calls.show_call(db, call_id)
    assert shown is not None
    [event] = [e for e in shown["timeline"] if e["kind"] == "language.chosen"]
    assert event["detail"] == {"language": language, "result": result}
    [ask] = s.prompt("ask_reason")
    assert ask == lib.items(rules.practices["bilingual"], "ask_reason", language=language)[0]
