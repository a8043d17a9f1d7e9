"""The dialling gate: only numbers the rules name, or an acknowledged call's confirmed
callback number (plain, domestic, not premium), ever reach the PBX; and every place the
controller makes the PBX dial goes through it."""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from ivr import contract
from ivr.oncall import dialer as oncall_dialer
from ivr.oncall.dialer import Dialer, Leg, allowed_number, dial_target, rules_numbers

IVR = Path(oncall_dialer.__file__).resolve().parents[1]
CLINICIAN = "+16175550321"  # n-one in rules_helpers.BASE
DESK = "+16175550399"  # overflow.bridge_to (conftest)
PATIENT = "+16175550494"

HOSTILE = [
    "500&PJSIP/evil",
    "+16175550321&PJSIP/evil",
    "+1617555012${EXTEN}",
    "+16175550321${EXTEN}",
    "+16175550321\n",
    "+16175550321\r\nAction: Originate",
    "\n+16175550321",
    "+1617555\n0321",
    '"+16175550321"',
    "'+16175550321'",
    "+16175550321\"",
    "+1617555032'1",
    "+16175550321,30,rU(evil)",
    "+16175550321@clinician-gateway",
    "PJSIP/16175550321@clinician-gateway",
    "+16175550321 ",
    " +16175550321",
    "+1 617 555 0321",
    "+1-617-555-0321",
    "16175550321",  # no +: never normalised
    "+" + "1" * 16,
    "+16175550321" + "0" * 200,
    "+" + "6" * 5000,
    "",
    "+",
    "+0123456789",
    "+١٦١٧٥٥٥٠٣٢١",  # Arabic-Indic digits: \d would take them, the gate must not
    "+１６１７５５５０３２１",  # full-width digits
    "+16175550321\x00",
]


@pytest.mark.parametrize("number", HOSTILE)
def test_hostile_strings_refused(practice, number):
    assert allowed_number(practice, number) is None
    # Not even as the patient's own confirmed number after an acknowledgement.
    assert allowed_number(practice, number, patient=number) is None


@pytest.mark.parametrize("value", [None, 16175550321, b"+16175550321", ["+16175550321"]])
def test_non_strings_refused(practice, value):
    assert allowed_number(practice, value) is None  # type: ignore[arg-type]


def test_rules_numbers_allowed(practice):
    named = rules_numbers(practice)
    assert CLINICIAN in named and DESK in named
    for number in named:
        assert allowed_number(practice, number) == number


@pytest.mark.parametrize("number", ["+16175550400", "+16175550322" + "1", "+16175550320",
                                    "+12125550100", PATIENT])
def test_numbers_not_named_by_the_rules_refused(practice, number):
    assert number not in rules_numbers(practice)
    assert allowed_number(practice, number) is None


def test_the_practice_own_did_is_not_dialable(practice):
    # Its DID / forwarding number are not clinicians' phones: dialling them would loop.
    for number in (*practice.dids, *practice.forwarding_numbers):
        assert allowed_number(practice, number) is None


# --- the patient's number ------------------------------------------------------------

def test_patient_number_before_acknowledgement_refused(practice):
    # Before an acknowledgement no `patient` is passed: a caller's number is not dialled.
    assert allowed_number(practice, PATIENT) is None
    assert allowed_number(practice, PATIENT, patient=None) is None


def test_patient_number_after_acknowledgement_allowed(practice):
    assert allowed_number(practice, PATIENT, patient=PATIENT) == PATIENT


def test_patient_gate_only_opens_for_that_number(practice):
    # The confirmed number does not open the gate for any other number.
    assert allowed_number(practice, "+16175550495", patient=PATIENT) is None
    assert allowed_number(practice, PATIENT + "&PJSIP/x", patient=PATIENT) is None


@pytest.mark.parametrize("number", [
    "+19005550123",  # premium rate (NANP 900)
])
def test_premium_rate_refused_even_when_confirmed(practice, number):
    import phonenumbers

    parsed = phonenumbers.parse(number, None)
    if phonenumbers.number_type(parsed) != phonenumbers.PhoneNumberType.PREMIUM_RATE:
        pytest.skip(f"{number} is not premium in this phonenumbers release")
    assert allowed_number(practice, number, patient=number) is None


@pytest.mark.parametrize("number", [
    "+442079460000",  # UK
    "+33142685300",  # France
    "+18762091234",  # Jamaica: +1 but not the practice's country (toll fraud classic)
    "+12684601234",  # Antigua
    "+16495551234",  # Turks and Caicos
])
def test_foreign_numbers_refused_even_when_confirmed(practice, number):
    assert practice.country.upper() == "US"
    assert allowed_number(practice, number, patient=number) is None


def test_invalid_domestic_number_refused_even_when_confirmed(practice):
    # Well-formed E.164 but not a valid US number (area code 011 does not exist).
    assert allowed_number(practice, "+10115550123", patient="+10115550123") is None


def test_unconfirmed_number_never_offered(practice, monkeypatch):
    """offer_patient_call passes the number as `patient` only if the intake confirmed it."""
    seen: list = []
    run = _offer(monkeypatch, practice, value=PATIENT, confirmed=False, key="1",
                 spy=seen)
    assert run.execs == []  # nothing dialled
    assert run.events == ["patient.refused_by_gate"]
    assert seen == []  # the gate was not even asked: no confirmed number


def test_confirmed_number_dialled_through_the_gate(practice, monkeypatch):
    seen: list = []
    run = _offer(monkeypatch, practice, value=PATIENT, confirmed=True, key="1", spy=seen)
    assert seen == [(PATIENT, PATIENT)]
    assert run.execs == [("Dial", f"{dial_target(PATIENT)},30")]
    assert run.inserted[0].number == PATIENT and run.inserted[0].kind == "patient"


@pytest.mark.parametrize("value", ["+19005550123", "+442079460000", "+1617555012${EXTEN}",
                                   "500&PJSIP/evil"])
def test_confirmed_but_refused_number_not_dialled(practice, monkeypatch, value):
    run = _offer(monkeypatch, practice, value=value, confirmed=True, key="1", spy=[])
    assert run.execs == [] and run.inserted == []
    assert run.events == ["patient.refused_by_gate"]


def test_no_key_no_dial(practice, monkeypatch):
    run = _offer(monkeypatch, practice, value=PATIENT, confirmed=True, key=None, spy=[])
    assert run.execs == [] and run.inserted == []


def test_clinician_hanging_up_ends_the_patient_leg(practice, monkeypatch):
    """The clinician hangs up while talking to the patient: the AGI channel is gone, the
    Dial's DialEnd (seen by the dialler) says the patient answered: `completed`."""
    run = _offer(monkeypatch, practice, value=PATIENT, confirmed=True, key="1", spy=[],
                 hang_up_after="ANSWER")
    assert run.finished == [("completed", "clinician-hung-up")]
    assert run.watched == []  # no longer followed once the Dial is over
    run = _offer(monkeypatch, practice, value=PATIENT, confirmed=True, key="1", spy=[],
                 hang_up_after=None)  # gone before the Dial ended: nobody knows
    assert run.finished == [("unknown", "clinician-hung-up")]


def _offer(monkeypatch, practice, *, value, confirmed, key, spy, hang_up_after="-"):
    from ivr.agi.protocol import AgiHangup
    from ivr.flows import screen

    run = SimpleNamespace(execs=[], events=[], inserted=[], finished=[], watched=[])

    def gate(p, number, *, patient=None):
        spy.append((number, patient))
        return allowed_number(p, number, patient=patient)

    async def intake_of(_db, _call_id):
        return {"callback": SimpleNamespace(value=value, confirmed=confirmed)}

    async def fake_ask(_channel, _items, _escape, _timeout_ms):
        return key

    async def fake_play(_channel, _items, _escape=""):
        return None

    async def add_event(_db, _call_id, kind, **_kw):
        run.events.append(kind)

    class Channel:
        headers = {"channel": "PJSIP/clinician-gateway-00000007"}

        async def wait_for_digit(self, _ms):
            return None

        async def exec(self, app, options="", timeout=60):
            run.execs.append((app, options))
            if hang_up_after != "-":
                [(_, leg)] = run.watched
                leg.dial_status = hang_up_after
                raise AgiHangup("clinician hung up")

        async def get_variable(self, name):
            return {"DIALSTATUS": "BUSY"}.get(name)

    class FakeDialer:
        async def insert(self, leg, **_kw):
            run.inserted.append(leg)

        async def finish(self, leg, status, detail=None, **_kw):
            run.finished.append((status, detail))

        def watch_dial(self, channel, leg):
            run.watched.append((channel, leg))

        def unwatch_dial(self, channel):
            run.watched[:] = [w for w in run.watched if w[0] != channel]

    monkeypatch.setattr(screen, "allowed_number", gate)
    monkeypatch.setattr(screen.callbacks, "intake_of", intake_of)
    monkeypatch.setattr(screen, "ask", fake_ask)
    monkeypatch.setattr(screen, "play", fake_play)
    monkeypatch.setattr(screen.calls, "add_event", add_event)
    lib = SimpleNamespace(flow=lambda name: name)
    services = SimpleNamespace(speech=lib, db=None, dialer=FakeDialer())
    try:
        asyncio.run(screen.offer_patient_call(services, Channel(), practice, "call-1",
                                              "n-one", []))
    except AgiHangup:
        assert hang_up_after != "-"
    return run


# --- the dialler's Originate -----------------------------------------------------------

class FakeAmi:
    def __init__(self) -> None:
        self.actions: list[dict] = []
        self.connected = True

    async def action(self, fields, **_kw):
        self.actions.append(dict(fields))
        return {"Response": "Success"}

    def subscribe(self, *_a):
        pass

    def on_connected(self, *_a):
        pass


class RecordingDialer(Dialer):
    def __init__(self, ami) -> None:
        super().__init__(ami, db=None)  # type: ignore[arg-type]
        self.finished: list[tuple[str, str | None]] = []

    async def finish(self, leg, status, *, detail=None, **_kw):  # type: ignore[override]
        leg.settle(status)
        self.finished.append((status, detail))

    async def record(self, leg_id, **fields):  # type: ignore[override]
        pass


def _leg(practice, number: str) -> Leg:
    return Leg(id="ab" * 16, call_id="call-1", kind="live", practice=practice,
               clinician_id="n-one", number=number, ring_seconds=10)


@pytest.mark.parametrize("number", HOSTILE + [PATIENT, "+19005550123", "+442079460000"])
def test_originate_refuses_what_the_gate_refuses(practice, number):
    async def go():
        ami = FakeAmi()
        dialer = RecordingDialer(ami)
        leg = _leg(practice, number)
        assert await dialer.originate(leg) is False
        assert ami.actions == [] and dialer.originates == 0
        assert leg.result.result() == "failed"
        assert dialer.finished == [("failed", "refused-by-gate")]
        assert leg.id not in dialer.legs
    asyncio.run(go())


def test_originate_of_a_rules_number(practice):
    async def go():
        ami = FakeAmi()
        dialer = RecordingDialer(ami)
        leg = _leg(practice, CLINICIAN)
        assert await dialer.originate(leg) is True
        [sent] = ami.actions
        assert sent["Action"] == "Originate"
        assert sent["Channel"] == f"PJSIP/16175550321@{contract.ENDPOINT_GATEWAY}"
        assert sent["Context"] == contract.CTX_CLINICIAN
        assert sent["ChannelId"] == leg.channel_id
        assert sent["Variable"] == f"{contract.VAR_LEG}={leg.id}"
        # Nothing in the action may carry a line break (AMI header injection).
        assert not any(re.search(r"[\r\n]", str(v)) for v in sent.values())
    asyncio.run(go())


def test_originate_asks_the_gate(practice, monkeypatch):
    """Monkeypatch the gate shut: even a rules number is then never originated."""
    asked: list = []

    def shut(p, number, **kw):
        asked.append((number, kw))
        return None

    monkeypatch.setattr(oncall_dialer, "allowed_number", shut)

    async def go():
        ami = FakeAmi()
        dialer = RecordingDialer(ami)
        assert await dialer.originate(_leg(practice, CLINICIAN)) is False
        assert ami.actions == []
    asyncio.run(go())
    # Clinician legs never pass `patient`: a patient number cannot ride on a leg's number.
    assert asked == [(CLINICIAN, {})]


def test_caller_id_cannot_inject(practice):
    evil = practice.__class__.__new__(practice.__class__)
    evil.__dict__.update(practice.__dict__)
    object.__setattr__(evil, "name", 'Evil" <+19005550123>\r\nAction: Originate')
    cid = oncall_dialer.caller_id(evil)
    assert "\r" not in cid and "\n" not in cid and cid.count('"') == 2


def test_dial_target_takes_gated_numbers_only():
    assert dial_target("+16175550321") == f"PJSIP/16175550321@{contract.ENDPOINT_GATEWAY}"
    for bad in ("500&PJSIP/evil", "+1617555012${EXTEN}", "16175550321"):
        with pytest.raises(AssertionError):
            dial_target(bad)


# --- every call site ---------------------------------------------------------------------

def _sources() -> dict[str, str]:
    return {str(p.relative_to(IVR)): p.read_text() for p in sorted(IVR.rglob("*.py"))}


def _functions_mentioning(tree: ast.AST, needle) -> set[str]:
    """Names of the innermost functions whose code holds a string constant matching."""
    found: set[str] = set()

    def visit(node, owner):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Expr) and isinstance(child.value, ast.Constant):
                continue  # a docstring names things; it dials nothing
            name = owner
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = child.name
            if isinstance(child, ast.Constant) and isinstance(child.value, str) \
                    and needle(child.value):
                found.add(owner or "<module>")
            visit(child, name)
    visit(tree, None)
    return found


# Every place that can make Asterisk place a call, and why it is safe.
ORIGINATE_SITES = {
    ("oncall/dialer.py", "originate"),  # clinician legs: allowed_number(...) first
    ("ami.py", "originate"),  # the generic helper; its callers are listed here too
}
# Callers of AmiClient.originate (the generic helper): faxes only, to the fax trunk.
HELPER_CALLERS = {"delivery/fax.py"}
DIAL_SITES = {
    ("flows/screen.py", "offer_patient_call"),  # the patient: allowed_number(patient=...)
}


def test_every_originate_and_dial_call_site_is_known():
    originates, dials, gateway = set(), set(), set()
    for rel, text in _sources().items():
        tree = ast.parse(text)
        for fn in _functions_mentioning(tree, lambda s: s == "Originate"):
            originates.add((rel, fn))
        for fn in _functions_mentioning(tree, lambda s: s == "Dial"):
            dials.add((rel, fn))
        for fn in _functions_mentioning(
                tree, lambda s: "clinician-gateway" in s or s.startswith("PJSIP/")):
            gateway.add((rel, fn))
        # Calls of the generic AMI originate helper: only the fax sender uses it.
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "originate" and rel != "ami.py":
                assert rel in HELPER_CALLERS or (
                    isinstance(node.func.value, ast.Name) and node.func.value.id in
                    ("dialer", "self") and rel in ("oncall/dialer.py",
                                                    "oncall/scheduler.py",
                                                    "flows/bridge.py")) or \
                    ast.unparse(node.func) in ("dialer.originate", "self.originate"), \
                    f"{rel}: {ast.unparse(node)}"
    assert originates == ORIGINATE_SITES, originates
    assert dials == DIAL_SITES, dials
    # The clinician gateway is named in the contract and used through dial_target only
    # (the trunks file may not reuse the name: trunks/validate.py reserves it).
    assert gateway <= {("contract.py", "<module>"), ("oncall/dialer.py", "dial_target"),
                       ("delivery/fax.py", "_originate"),
                       ("trunks/validate.py", "<module>")}, gateway
    fax = _sources()["delivery/fax.py"]
    assert "ENDPOINT_GATEWAY" not in fax and "clinician-gateway" not in fax


def test_dial_sites_pass_the_gate_first():
    """In each clinician-facing site, the gate is called before the action is built."""
    src = _sources()
    originate = _body(src["oncall/dialer.py"], "originate", "Dialer")
    assert originate.index("allowed_number(") < originate.index('"Originate"')
    assert "dial_target(number)" in originate and "dial_target(leg.number)" not in originate
    offer = _body(src["flows/screen.py"], "offer_patient_call")
    assert offer.index("allowed_number(") < offer.index('"Dial"')
    assert 'dial_target(number)' in offer


def test_dialler_callers_use_originate_only():
    """The flows and the scheduler place legs only through Dialer.originate."""
    src = _sources()
    for rel in ("flows/bridge.py", "oncall/scheduler.py", "flows/screen.py"):
        assert "ami.action" not in src[rel] and "ami.originate" not in src[rel], rel
        assert '"Originate"' not in src[rel], rel


def _body(text: str, name: str, cls: str | None = None) -> str:
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if cls and isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                        and item.name == name:
                    return ast.get_source_segment(text, item) or ""
        if not cls and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                and node.name == name:
            return ast.get_source_segment(text, node) or ""
    raise AssertionError(f"{name} not found")


def test_dialplan_dials_the_gateway_only_from_the_fallback_files():
    """The dialplan's only gateway Dial is the fallback's (numbers the controller wrote
    from the rules); nothing a caller keys reaches a Dial string."""
    conf = (IVR.parent / "dialplans" / "extensions.conf").read_text()
    dials = [line for line in conf.splitlines()
             if re.search(r"\bDial\(", line) and not line.lstrip().startswith(";")]
    assert len(dials) == 1, dials
    assert "PJSIP/${NUM}@clinician-gateway" in dials[0]
    assert "Set(NUM=${FILTER(0-9+,${CUT(NUMS,-,${I})})})" in conf
    assert re.search(r"NUMS=\$\{FILE\(\{\{fallback_dir\}\}/\$\{FBKEY\}\)\}", conf)


# --- an Originate lost in flight is never re-sent ---------------------------------------

class LosingAmi(FakeAmi):
    """Writes the action (records it), then loses the connection before the response."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    async def action(self, fields, **_kw):
        from ivr.ami import AmiConnectionLost, AmiNotConnected

        if "not connected" in self.message:  # as AmiClient: refused before sending
            raise AmiNotConnected(self.message)
        self.actions.append(dict(fields))
        await asyncio.sleep(0)
        raise AmiConnectionLost(self.message)


class RecordingDialer2(RecordingDialer):
    def __init__(self, ami) -> None:
        super().__init__(ami)
        self.recorded: list[dict] = []

    async def record(self, leg_id, **fields):  # type: ignore[override]
        self.recorded.append(fields)


def test_originate_lost_in_flight_is_kept_and_not_resent(practice):
    async def go():
        ami = LosingAmi("connection lost during Originate; not re-sent")
        dialer = RecordingDialer2(ami)
        leg = _leg(practice, CLINICIAN)
        assert await dialer.originate(leg) is True  # maybe placed: wait for its channel
        assert len(ami.actions) == 1 and dialer.originates == 1
        assert not leg.result.done() and leg.id in dialer.legs
        assert dialer.recorded == [{"detail": "ami-lost-in-flight"}]
    asyncio.run(go())


def test_originate_never_sent_fails_the_leg(practice):
    async def go():
        ami = LosingAmi("AMI is not connected")
        dialer = RecordingDialer2(ami)
        leg = _leg(practice, CLINICIAN)
        assert await dialer.originate(leg) is False
        assert ami.actions == [] and leg.result.result() == "failed"
        assert dialer.finished == [("failed", "ami-down")] and leg.id not in dialer.legs
    asyncio.run(go())


def test_fault_knob_drops_the_connection_after_the_bytes_are_written(practice):
    """The tests' fault (tests/support/faults.py) must cut AMI with the Originate in
    flight (it once dropped it before the action even ran, so the e2e test saw
    `ami-down`)."""
    from support.faults import drop_ami_after_originate

    async def go():
        from ivr.ami import AmiConnectionLost

        written = asyncio.Event()
        lost = asyncio.get_running_loop().create_future()

        class Ami(FakeAmi):
            async def action(self, fields, **_kw):
                if lost.done():
                    raise AmiConnectionLost("AMI is not connected")
                self.actions.append(dict(fields))
                written.set()
                return await lost

            def _drop(self):
                assert written.is_set(), "dropped before the Originate was written"
                lost.set_exception(AmiConnectionLost("connection lost during Originate"))

        drop_ami_after_originate(Ami)
        ami = Ami()
        dialer = RecordingDialer2(ami)
        leg = _leg(practice, CLINICIAN)
        assert await dialer.originate(leg) is True
        assert len(ami.actions) == 1
        assert dialer.recorded == [{"detail": "ami-lost-in-flight"}]
    asyncio.run(go())


@pytest.mark.parametrize("dial_status, reason, expected", [
    ("BUSY", "0", ("busy", "dial-busy")),          # a 486, as Asterisk 22 reports it
    ("NOANSWER", "0", ("no_answer", "dial-noanswer")),
    ("CHANUNAVAIL", "0", ("failed", "dial-chanunavail")),
    (None, "5", ("busy", "reason-5")),             # no DialEnd seen: the reason code
    (None, "0", ("failed", "reason-0")),           # ... after a short wait for a cause
])
@pytest.mark.parametrize("dial_end_first", [True, False])
def test_unanswered_leg_result_from_dial_end(practice, monkeypatch, dial_status, reason,
                                             expected, dial_end_first):
    """DialEnd and OriginateResponse come from different Asterisk threads, in any order."""
    monkeypatch.setattr(oncall_dialer, "CAUSE_WAIT_SECONDS", 0.3)

    async def go():
        dialer = RecordingDialer(FakeAmi())
        leg = _leg(practice, CLINICIAN)
        assert await dialer.originate(leg)
        dial_end = {"DestUniqueid": leg.channel_id, "DialStatus": dial_status}
        response = {"ActionID": leg.action_id, "Response": "Failure", "Reason": reason}
        if dial_status and dial_end_first:
            await dialer._on_dial_end(dial_end)
        later = asyncio.ensure_future(dialer._on_originate_response(response))
        await asyncio.sleep(0.05)
        if dial_status and not dial_end_first:
            await dialer._on_dial_end(dial_end)
        await later
        assert dialer.finished[0] == expected and leg.result.result() == expected[0]
        assert leg.id not in dialer.legs
    asyncio.run(go())
