"""The clinician line at the flow level: the inbound flow on a scripted fake channel, the
example rules (sunny-pediatrics: nurse-avery +16175550121, PIN 4821; nurse-blake has no
PIN; mesa-family is another practice) and a real (SQLite) database. No Asterisk.

The fake caller presses keys when a given prompt plays (the first key interrupts it, the
rest are typed after it), as a person answering the prompt would.
"""

from __future__ import annotations

import json
import wave
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select, update

from ivr.agi.protocol import AgiHangup, AgiReply
from ivr.db.engine import Database
from ivr.db.models import SOURCE_CALLER_ID, SOURCE_RECORDING, CallEvent
from ivr.documents.report import build_report, night_of
from ivr.flows import clinician_line, inbound
from ivr.flows.clinician_line import (
    LOCKOUT_FAILURES,
    failures_by_clinician,
    pin_holders,
    tries_left,
    who_keyed,
)
from ivr.flows.runner import CallContext
from ivr.flows.speech import PlayFile
from ivr.oncall import callbacks
from ivr.oncall.dialer import caller_id
from ivr.records import calls
from ivr.rules import load_rules
from ivr.rules.model import Clinician

REPO = Path(__file__).resolve().parents[2]
SUNNY_DID = "+16175550100"
MESA_DID = "+17205550200"
AVERY = "+16175550121"  # nurse-avery, PIN 4821
BLAKE = "+16175550122"  # nurse-blake, no PIN
PATIENT = "+16175550171"
EVENING_NY = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)  # Sunny closed: after hours
GREETINGS = ("prompt/greeting", "prompt/overflow_greeting", "flow/generic_greeting")


@pytest.fixture(scope="module")
def rules():
    res = load_rules(REPO / "routing_rules", now=EVENING_NY)
    assert res.ok, [str(e) for e in res.errors]
    return res.rules


class Library:
    """Prompt items named after what they say, so a test reads what the caller heard."""

    def flow(self, key: str, _language: str | None = None) -> PlayFile:
        return PlayFile(f"flow/{key}")

    def text(self, text: str) -> PlayFile:
        return PlayFile(f"text/{text}")

    def items(self, practice: Any, pid: str, slots: Any = None,
              language: str | None = None) -> list[PlayFile]:
        return [PlayFile(f"prompt/{pid}")]


class Dialer:
    def __init__(self) -> None:
        self.inserted: list[Any] = []
        self.finished: list[tuple[str, str]] = []

    async def insert(self, leg: Any, **_kw: Any) -> None:
        self.inserted.append(leg)

    async def finish(self, leg: Any, status: str, **_kw: Any) -> None:
        self.finished.append((leg.id, status))

    def watch_dial(self, _channel: str, _leg: Any) -> None:
        pass

    def unwatch_dial(self, _channel: str) -> None:
        pass


class Caller:
    """A fake AGI channel with a person on it: `keys[prompt]` lists what they press each
    time that prompt plays; `actions[prompt]` runs (once) as it starts playing."""

    def __init__(self, keys: dict[str, list[str]] | None = None,
                 hang_up_at: tuple[str, ...] = GREETINGS,
                 actions: dict[str, Callable[[], Awaitable[None]]] | None = None,
                 dialstatus: str = "BUSY") -> None:
        self.keys = {k: list(v) for k, v in (keys or {}).items()}
        self.hang_up_at = hang_up_at
        self.actions = dict(actions or {})
        self.dialstatus = dialstatus
        self.uniqueid = "1700000000.1"
        self.typed: list[str] = []
        self.heard: list[str] = []
        self.execs: list[tuple[str, str]] = []
        self.variables: dict[str, str] = {}
        self.hung_up = False
        self.headers: dict[str, str] = {"channel": "PJSIP/trunk-00000001"}

    def _key(self, key: str | None) -> AgiReply:
        return AgiReply(200, str(ord(key)) if key else "0")

    async def command(self, name: str, *args: object, timeout: float | None = None,
                      allow_after_hangup: bool = False) -> AgiReply:
        if self.hung_up:
            raise AgiHangup("caller hung up")
        if name == "GET OPTION":  # STREAM FILE, then WAIT FOR DIGIT, in one command
            played = await self.command("STREAM FILE", *args[:2])
            if played.result_int:
                return played
            return await self.command("WAIT FOR DIGIT", args[2])
        if name == "STREAM FILE":
            what, escape = str(args[0]), str(args[1])
            self.heard.append(what)
            if what in self.hang_up_at:
                self.hung_up = True
                raise AgiHangup("caller hung up")
            action = self.actions.pop(what, None)
            if action is not None:
                await action()
            presses = self.keys.get(what)
            if presses:
                keys = presses.pop(0)
                self.typed.extend(keys[1:])
                return self._key(keys[0] if keys[0] in escape else None)
            return self._key(None)
        if name in ("SAY DIGITS", "SAY NUMBER", "SAY DATETIME"):
            self.heard.append(f"{name}:{args[0]}")
            return self._key(None)
        if name == "WAIT FOR DIGIT":
            return self._key(self.typed.pop(0) if self.typed else None)
        return AgiReply(200, "1")

    async def gosub(self, _context: str, arguments: tuple[str, ...],
                    timeout: float = 60) -> AgiReply:
        """ivr-ask as Asterisk runs it: one Read of its files, here heard to the end
        (these callers press nothing in it; they hang up at the greeting)."""
        for path in arguments[0].split("&"):
            await self.command("STREAM FILE", path, "")
        return AgiReply(200, "0", note="Gosub complete")

    async def get_full_variable(self, expression: str) -> str | None:
        return "TIMEOUT:"  # no key

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        reply = await self.command("WAIT FOR DIGIT", timeout_ms)
        return chr(reply.result_int) if reply.result_int > 0 else None

    async def get_data(self, _path: str, _timeout_ms: int, max_digits: int,
                       prompt_seconds: float = 60) -> tuple[str, bool]:
        """Asterisk collecting keys: the typed ones, up to '#' or `max_digits`."""
        keys = ""
        while self.typed and len(keys) < max_digits:
            key = self.typed.pop(0)
            if key == "#":
                return keys, False
            keys += key
        return keys, len(keys) < max_digits

    async def get_variable(self, name: str) -> str | None:
        return {"DIALSTATUS": self.dialstatus}.get(name)

    async def set_variable(self, name: str, value: str, **_kw: Any) -> None:
        self.variables[name] = value

    async def exec(self, application: str, options: str = "", timeout: float = 60) -> AgiReply:
        self.execs.append((application, options))
        return AgiReply(200, "0")


@pytest.fixture
async def services(rules, tmp_path):
    """What the inbound flow uses of the controller's services; a fresh database."""
    pbx = SimpleNamespace(host_dir=tmp_path / "pbx", inner_path=lambda p: f"pbx:{p.name}")
    made = SimpleNamespace(rules=rules, clock=lambda: EVENING_NY, speech=Library(),
                           pbx=pbx, dialer=Dialer(),
                           db=Database(f"sqlite+aiosqlite:///{tmp_path / 'ivr.sqlite3'}"))
    await made.db.create()
    yield made
    await made.db.close()


async def _message(db: Database, rules, tmp_path: Path, started: datetime,
                   name: str = "m") -> tuple[str, str]:
    """A patient's call with a pending call-back (as an unanswered urgent call leaves it):
    (call id, call-back id)."""
    call_id = await calls.start_call(db, uniqueid=f"u-{name}", node="n", dialled=SUNNY_DID,
                                     forwarded_from="", caller=PATIENT, started_at=started)
    await calls.update_call(db, call_id, practice_id="sunny-pediatrics", route="after_hours",
                            disposition="urgent")
    await calls.save_intake(db, call_id, "callback", source=SOURCE_CALLER_ID, value=PATIENT,
                            confirmed=True)
    wav = tmp_path / f"{name}-name.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)
    await calls.save_intake(db, call_id, "name", source=SOURCE_RECORDING,
                            recording_path=str(wav), duration_seconds=0.1)
    cb_id = f"cb{name}".ljust(32, "0")
    assert await callbacks.create(db, callback_id=cb_id, call_id=call_id,
                                  practice=rules.practices["sunny-pediatrics"],
                                  now=started + timedelta(minutes=2),
                                  first_at=started + timedelta(hours=1),
                                  interval_seconds=120, promised=None)
    return call_id, cb_id


async def _call(services, caller: Caller, number: str = AVERY,
                did: str = SUNNY_DID) -> tuple[str, Any]:
    """Run the inbound flow for one call; (call id, outcome or the AgiHangup raised)."""
    call_id = await calls.start_call(services.db, uniqueid=f"in-{calls.new_call_id()}",
                                     node="n", dialled=did, forwarded_from="",
                                     caller=number, started_at=calls.now())
    ctx = CallContext(caller, call_id, services, did, "", number)  # type: ignore[arg-type]
    try:
        outcome: Any = await inbound.handle(ctx)
    except AgiHangup as exc:
        outcome = exc
    return call_id, outcome


async def _record(db: Database, call_id: str) -> dict[str, Any]:
    record = await calls.show_call(db, call_id)  # what `ivr calls show` prints
    assert record is not None
    return record


def _kinds(record: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in record["timeline"]]


def _went_on_as_patient(caller: Caller, record: dict[str, Any], outcome: Any) -> None:
    assert isinstance(outcome, AgiHangup)  # the fake caller hangs up at the greeting
    assert caller.heard[-1] in GREETINGS
    # The greeting is played by the first question's command (ivr-ask): a hang-up in it
    # is recorded at that question.
    assert record["route"] == "after_hours"
    assert record["abandoned_step"] == "intake.callback"
    assert "prompt.greeting" in _kinds(record)
    assert "clinician.pin_ok" not in _kinds(record)


# --- pure -------------------------------------------------------------------------------

def _clinician(cid: str, phone: str, pin: str | None) -> Clinician:
    return Clinician(id=cid, name=cid, role="nurse", phone=phone, pin=pin)


def test_who_keyed_compares_every_pin():
    a, b = _clinician("a", AVERY, "4821"), _clinician("b", AVERY, "99")
    assert who_keyed((a, b), "4821") is a and who_keyed((a, b), "99") is b
    assert who_keyed((a, b), "482") is None and who_keyed((a, b), "48210") is None
    assert who_keyed((a, b), "") is None


def test_pin_holders_are_this_practices_clinicians_with_a_pin(rules):
    sunny, mesa = rules.practices["sunny-pediatrics"], rules.practices["mesa-family"]
    assert [c.id for c in pin_holders(sunny, AVERY)] == ["nurse-avery"]
    assert pin_holders(sunny, BLAKE) == () and pin_holders(mesa, AVERY) == ()
    assert pin_holders(sunny, None) == () and pin_holders(None, AVERY) == ()


def test_tries_never_pass_the_lockout():
    assert [tries_left(n) for n in range(7)] == [3, 3, 3, 2, 1, 0, 0]
    assert LOCKOUT_FAILURES == 5


def test_failures_are_counted_per_clinician():
    details = [json.dumps({"clinicians": ["a"], "attempt": 1}),
               json.dumps({"clinicians": ["a", "b"], "attempt": 2}), "not json", "[]",
               json.dumps({"clinicians": "a"})]
    assert failures_by_clinician(details, {"a", "b", "c"}) == {"a": 2, "b": 1, "c": 0}


# --- the flow -----------------------------------------------------------------------------

async def test_right_pin_hears_messages_oldest_first_and_acknowledges(services, rules,
                                                                       tmp_path):
    db = services.db
    now = calls.now()
    newer_call, newer = await _message(db, rules, tmp_path, now - timedelta(minutes=10), "b")
    older_call, older = await _message(db, rules, tmp_path, now - timedelta(minutes=40), "a")
    caller = Caller({"flow/clinician_offer": ["4821#"],
                     "flow/line_menu": ["2", "3", "1"],  # again, skip the oldest; take next
                     "flow/line_offer_dial": ["2"]})
    call_id, outcome = await _call(services, caller)
    assert outcome.result == "done"
    # Two messages; the oldest one heard twice (2), then skipped (3); the next taken (1).
    assert caller.heard[:3] == ["flow/clinician_offer", "flow/you_have", "SAY NUMBER:2"]
    assert caller.heard.count("flow/message") == 3 and "flow/messages_waiting" in caller.heard
    names = [h for h in caller.heard if h.startswith("pbx:")]
    assert names == [f"pbx:{call_id}-1-name", f"pbx:{call_id}-1-name", f"pbx:{call_id}-2-name"]
    assert caller.heard.count("SAY DIGITS:6175550171") == 3
    assert caller.heard[-3:] == ["flow/screen_taken", "flow/line_offer_dial",
                                 "flow/no_more_messages"]
    assert caller.execs == []  # 2: no call to the patient
    assert not list((services.pbx.host_dir / "sounds" / "ivr-screen").iterdir())
    older_cb, newer_cb = await callbacks.get(db, older), await callbacks.get(db, newer)
    assert older_cb.status == "pending"
    assert (newer_cb.status, newer_cb.acknowledged_by, newer_cb.acknowledged_via) == \
        ("acknowledged", "nurse-avery", "clinician-line")
    record = await _record(db, call_id)
    assert record["route"] == "clinician_line" and record["abandoned_step"] is None
    assert record["intake"] == {}  # nothing of a patient's is kept on the clinician's call
    kinds = _kinds(record)
    for kind in ("route.decided", "clinician.offered", "clinician.pin_ok", "route.changed",
                 "clinician.messages", "clinician.skipped", "clinician.acknowledged"):
        assert kind in kinds, kind
    assert "prompt.greeting" not in kinds
    details = json.dumps([e["detail"] for e in record["timeline"]])  # times may hold 4821
    assert "4821" not in details and PATIENT not in details
    patient = await _record(db, newer_call)
    assert patient["oncall_outcome"] == "acknowledged"
    ack = [e for e in patient["timeline"] if e["kind"] == "callback.acknowledged"]
    assert ack[0]["detail"]["via"] == "clinician-line"
    assert older_call != newer_call


async def test_call_the_patient_now_dials_through_the_gate(services, rules, tmp_path):
    patient_call, _cb = await _message(services.db, rules, tmp_path, calls.now(), "p")
    caller = Caller({"flow/clinician_offer": ["4821#"], "flow/line_menu": ["1"],
                     "flow/line_offer_dial": ["1"]})
    _call_id, outcome = await _call(services, caller)
    assert outcome.result == "done"
    # The same Dial as a call-back leg's, to the gated number; `g` keeps the clinician on.
    assert caller.execs == [("Dial", "PJSIP/16175550171@clinician-gateway,30,g")]
    # The patient sees the practice (as from a call-back leg), not the clinician's phone.
    assert caller.variables["CALLERID(all)"] == caller_id(rules.practices["sunny-pediatrics"])
    assert AVERY not in caller.variables["CALLERID(all)"]
    [leg] = services.dialer.inserted
    assert (leg.kind, leg.call_id, leg.clinician_id, leg.number) == \
        ("patient", patient_call, "nurse-avery", PATIENT)
    assert services.dialer.finished == [(leg.id, "busy")]
    assert caller.heard[-1] == "flow/no_more_messages"


async def test_wrong_pin_three_times_goes_on_as_a_patient(services, rules, tmp_path):
    _, cb = await _message(services.db, rules, tmp_path, calls.now())
    caller = Caller({"flow/clinician_offer": ["1111#"], "flow/ask_pin": ["2222#", "48#"]})
    call_id, outcome = await _call(services, caller)
    record = await _record(services.db, call_id)
    _went_on_as_patient(caller, record, outcome)
    assert caller.heard.count("flow/pin_wrong") == 3 and caller.heard.count("flow/ask_pin") == 2
    assert _kinds(record).count("clinician.pin_failed") == 3
    assert "clinician.pin_refused" in _kinds(record)
    assert (await callbacks.get(services.db, cb)).status == "pending"


async def test_no_key_goes_on_as_a_patient(services):
    caller = Caller()
    call_id, outcome = await _call(services, caller)
    record = await _record(services.db, call_id)
    _went_on_as_patient(caller, record, outcome)
    assert caller.heard[0] == "flow/clinician_offer"
    assert "clinician.no_pin" in _kinds(record)
    # A star or pound is no PIN either (a patient pressing a key to skip ahead).
    caller = Caller({"flow/clinician_offer": ["#"]})
    call_id, outcome = await _call(services, caller)
    _went_on_as_patient(caller, await _record(services.db, call_id), outcome)


async def test_five_wrong_pins_lock_the_prompt_out_for_the_window(services):
    db = services.db
    first = Caller({"flow/clinician_offer": ["1#"], "flow/ask_pin": ["2#", "3#"]})
    await _call(services, first)
    second = Caller({"flow/clinician_offer": ["1#"], "flow/ask_pin": ["2#", "4821#"]})
    second_id, _ = await _call(services, second)
    # Only 2 tries were left (3 + 2 = 5): the right PIN on a third try is never asked for.
    assert second.heard.count("flow/pin_wrong") == 2 and second.heard.count("flow/ask_pin") == 1
    assert "clinician.pin_ok" not in _kinds(await _record(db, second_id))
    locked = Caller({"flow/clinician_offer": ["4821#"]})
    locked_id, outcome = await _call(services, locked)
    record = await _record(db, locked_id)
    _went_on_as_patient(locked, record, outcome)
    assert "flow/clinician_offer" not in locked.heard
    [event] = [e for e in record["timeline"] if e["kind"] == "clinician.locked_out"]
    assert event["detail"] == {"clinicians": ["nurse-avery"], "failures": 5}
    # The window passes (the failures are 16 minutes old): the prompt is back.
    async with db.session() as s:
        await s.execute(update(CallEvent).where(CallEvent.kind == "clinician.pin_failed")
                        .values(at=calls.now() - timedelta(minutes=16)))
    back = Caller({"flow/clinician_offer": ["4821#"]}, hang_up_at=())
    back_id, outcome = await _call(services, back)
    assert outcome.result == "done" and "clinician.pin_ok" in _kinds(await _record(db, back_id))


async def test_lockout_counts_only_this_practices_calls(services):
    """A failure on another practice's call (same clinician id) does not count here."""
    db = services.db
    other = await calls.start_call(db, uniqueid="o", node="n", dialled=MESA_DID,
                                   forwarded_from="", caller=AVERY, started_at=calls.now())
    await calls.update_call(db, other, practice_id="mesa-family")
    for attempt in range(LOCKOUT_FAILURES):
        await calls.add_event(db, other, "clinician.pin_failed", clinicians=["nurse-avery"],
                              attempt=attempt)
    counts = await clinician_line.recent_failures(db, "sunny-pediatrics", {"nurse-avery"},
                                                  calls.now())
    assert counts == {"nurse-avery": 0}


async def test_acknowledgement_race_lost(services, rules, tmp_path):
    _, cb = await _message(services.db, rules, tmp_path, calls.now())

    async def colleague_first() -> None:  # a call-back leg's clinician presses 1 first
        assert await callbacks.acknowledge(services.db, cb, clinician_id="dr-patel",
                                           via="callback", now=calls.now())

    caller = Caller({"flow/clinician_offer": ["4821#"], "flow/line_menu": ["1"]},
                    actions={"flow/line_menu": colleague_first})
    call_id, outcome = await _call(services, caller)
    assert outcome.result == "done"
    assert caller.heard[-2:] == ["flow/line_taken_by_other", "flow/no_more_messages"]
    assert "flow/line_offer_dial" not in caller.heard and caller.execs == []
    row = await callbacks.get(services.db, cb)
    assert (row.acknowledged_by, row.acknowledged_via) == ("dr-patel", "callback")
    assert "clinician.ack_lost" in _kinds(await _record(services.db, call_id))


async def test_no_pin_configured_goes_on_as_a_patient(services):
    caller = Caller({"flow/clinician_offer": ["4821#"]})
    call_id, outcome = await _call(services, caller, number=BLAKE)
    record = await _record(services.db, call_id)
    _went_on_as_patient(caller, record, outcome)
    assert "flow/clinician_offer" not in caller.heard
    assert not [k for k in _kinds(record) if k.startswith("clinician.")]


async def test_clinician_of_another_practice_goes_on_as_a_patient(services):
    caller = Caller({"flow/clinician_offer": ["4821#"]})
    call_id, outcome = await _call(services, caller, did=MESA_DID)
    assert isinstance(outcome, AgiHangup) and caller.heard[-1] in GREETINGS
    record = await _record(services.db, call_id)
    assert record["practice_id"] == "mesa-family" and "flow/clinician_offer" not in caller.heard
    assert record["route"] != "clinician_line"


async def test_no_messages_waiting(services):
    caller = Caller({"flow/clinician_offer": ["4821#"]}, hang_up_at=())
    call_id, outcome = await _call(services, caller)
    assert outcome.result == "done"
    assert caller.heard[-1] == "flow/no_pending"
    record = await _record(services.db, call_id)
    [event] = [e for e in record["timeline"] if e["kind"] == "clinician.messages"]
    assert event["detail"] == {"count": 0}


async def test_hang_up_on_the_clinician_line_is_no_abandoned_patient_call(services, rules,
                                                                         tmp_path):
    _, cb = await _message(services.db, rules, tmp_path, calls.now())
    caller = Caller({"flow/clinician_offer": ["4821#"]}, hang_up_at=("flow/line_menu",))
    call_id, outcome = await _call(services, caller)
    assert isinstance(outcome, AgiHangup)
    record = await _record(services.db, call_id)
    assert record["route"] == "clinician_line" and record["abandoned_step"] is None
    assert record["intake"] == {}  # the clinician's number is not kept as a callback
    assert (await callbacks.get(services.db, cb)).status == "pending"
    assert not list((services.pbx.host_dir / "sounds" / "ivr-screen").iterdir())


async def test_clinician_line_calls_are_listed_apart_in_the_morning_report(services, rules,
                                                                          tmp_path):
    patient_call, _cb = await _message(services.db, rules, tmp_path, calls.now())
    caller = Caller({"flow/clinician_offer": ["4821#"], "flow/line_menu": ["1"]})
    line_id, _ = await _call(services, caller)
    sunny = rules.practices["sunny-pediatrics"]
    records = [await _record(services.db, i) for i in (patient_call, line_id)]
    window = night_of(sunny, calls.now())
    assert window is not None
    report = build_report(sunny, window, records, calls.now()).to_json()
    assert [c["call_id"] for c in report["calls"]] == [patient_call]
    assert report["counts"]["calls"] == 1 and report["counts"]["clinician_line_calls"] == 1
    [line] = report["clinician_line_calls"]
    assert (line["call_id"], line["clinician_id"], line["acknowledged"]) == \
        (line_id, "nurse-avery", 1)
    assert "clinician_line" not in report["counts"]["by_route"]
    assert report["calls"][0]["outcome"]["text"].endswith("(via clinician-line)")


async def test_events_hold_no_pin(services):
    """Every event this feature writes: ids and counts only (checked on a failed try)."""
    db = services.db
    caller = Caller({"flow/clinician_offer": ["4822#"]})
    call_id, _ = await _call(services, caller)
    async with db.session() as s:
        details = (await s.scalars(select(CallEvent.detail)
                                   .where(CallEvent.call_id == call_id))).all()
    assert details and not any("4822" in d or AVERY in d for d in details)
