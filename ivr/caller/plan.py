"""What a caller or a phone does, as data: steps, a call plan, a book of phones.

Plans cross a process boundary (the agent runs in its own process, pjsua2 being one
library instance per process), so each type turns into JSON and back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KEYS = frozenset("0123456789*#")


@dataclass(frozen=True)
class Listen:
    """Wait until the service has spoken and then gone quiet: it waits for us.

    `quiet_ms` is longer than any pause inside a prompt or between two prompts of one
    turn, and shorter than the time the service waits for keys. `quiet_ms=0`: only
    wait until the service has said `min_voice_ms` (hold music, ringing, a long notice).
    `tone`: the turn ends with the beep before a recording instead (say something right
    after it); `tone_or_quiet_ms`: or with that much quiet, if the beep was not heard.
    """

    quiet_ms: int = 1000
    min_voice_ms: int = 300
    timeout_s: float = 60.0
    tone: bool = False
    tone_or_quiet_ms: int = 0


def turn(min_voice_ms: int = 800, timeout_s: float = 300.0) -> Listen:
    """The service has had its say and waits for us, as a person hears it.

    A loaded controller can leave seconds between two prompts of one turn (4.6 s seen
    with two CPU hogs beside other work): 2 s of quiet, well under a practice's key
    wait, that follow more voice than the end of a prompt cut by a key can hold (~0.4 s).
    A caller that knows a turn's prompts asks for most of their voice. Up to 5 minutes:
    a starved PBX has stretched a 20 s prompt past a minute.
    """
    return Listen(quiet_ms=2000, min_voice_ms=min_voice_ms, timeout_s=timeout_s)


#: The least voice of two turns that follow another command of the service, where a
#: starved controller can leave seconds of quiet (a key pressed there is lost,
#: docs/platform.md): the offer to call back the caller ID ("To be called back at
#: <digits>", 8 s, "press 1. To give...", 4.3 s) after the greeting, and the triage menu
#: (four or more choices, 7 s or more) after the reason's recording.
OFFER_VOICE_MS = 9500
MENU_VOICE_MS = 5000

#: "After the tone, please say...": the beep's end (the quiet after it: hearing's
#: TONE_AFTER_MS) ends the turn, however long the pause before it (a caller who spoke in
#: that pause, or over the beep, would not be recorded). A beep a starved
#: line garbled past recognition: 2 s of quiet end the turn, inside the recording's 5 s
#: (ivr.flows.intake.SILENCE_SECONDS).
BEEP = Listen(tone=True, timeout_s=300.0, tone_or_quiet_ms=2000)
#: A caller's breath between their last word and the '#' that ends a recording: Record
#: drops the last 250 ms of a recording a key ended (the key's own tone), which must not
#: be the end of a word.
BEFORE_POUND_MS = 500


@dataclass(frozen=True)
class Press:
    """Keys as RFC 4733 events, the way a phone's keypad sends them."""

    keys: str

    def __post_init__(self) -> None:
        bad = set(self.keys) - KEYS
        if not self.keys or bad:
            raise ValueError(f"not phone keys: {self.keys!r}")


@dataclass(frozen=True)
class Say:
    """Play a WAV file (16-bit PCM, mono) into the call, to its end."""

    wav: str


@dataclass(frozen=True)
class Pause:
    """The caller's own silence (thinking, or deliberately not answering)."""

    ms: int


@dataclass(frozen=True)
class Hangup:
    """End the call from our side."""


@dataclass(frozen=True)
class Cue:
    """Wait until the file `path` exists: a cue from outside the call.

    For a moment nothing in the call's own audio shows, but the test can see in the
    system under test (two channels in one bridge, a controller killed): the test
    creates the file then. What is heard after the cue counts from the cue.
    """

    path: str
    timeout_s: float = 300.0


@dataclass(frozen=True)
class AwaitEnd:
    """Wait for the service to end the call."""

    timeout_s: float = 120.0


Step = Listen | Press | Say | Pause | Cue | Hangup | AwaitEnd
STEP_TYPES: dict[str, type[Step]] = {cls.__name__.lower(): cls for cls in
                                     (Listen, Press, Say, Pause, Cue, Hangup, AwaitEnd)}


def step_to_json(step: Step) -> dict[str, Any]:
    return {"do": type(step).__name__.lower(), **asdict(step)}


def step_from_json(data: dict[str, Any]) -> Step:
    args = dict(data)
    kind = args.pop("do")
    if kind not in STEP_TYPES:
        raise ValueError(f"unknown step {kind!r}; known: {', '.join(STEP_TYPES)}")
    return STEP_TYPES[kind](**args)


@dataclass(frozen=True)
class CallPlan:
    """One outgoing call: who we claim to be, extra headers, and what we do."""

    caller_id: str = "+16175550199"
    caller_name: str = "Test Caller"
    steps: tuple[Step, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # e.g. (("Diversion", "<sip:...>"),)
    codec: str = "PCMU"
    answer_timeout_s: float = 60.0
    #: A SIP account to call from (a softphone's): digest credentials, and whether to
    #: register first; None: an anonymous caller, as a carrier's forwarded call comes.
    account: SipAccount | None = None

    def to_json(self) -> dict[str, Any]:
        return {"caller_id": self.caller_id, "caller_name": self.caller_name,
                "steps": [step_to_json(s) for s in self.steps],
                "headers": [list(h) for h in self.headers], "codec": self.codec,
                "answer_timeout_s": self.answer_timeout_s,
                "account": asdict(self.account) if self.account else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallPlan:
        account = data.get("account")
        return cls(caller_id=data["caller_id"], caller_name=data["caller_name"],
                   steps=tuple(step_from_json(s) for s in data["steps"]),
                   headers=tuple((str(k), str(v)) for k, v in data["headers"]),
                   codec=data["codec"], answer_timeout_s=float(data["answer_timeout_s"]),
                   account=SipAccount(**account) if account else None)


@dataclass(frozen=True)
class SipAccount:
    """Digest credentials of a SIP account (the From user is `user`); `register`: send a
    REGISTER and wait for its answer before dialling."""

    user: str
    password: str
    register: bool = True


@dataclass(frozen=True)
class Phone:
    """A clinician's (or patient's) phone: ring, then answer, refuse or stay ringing."""

    answer: bool = True
    busy: bool = False
    ring_ms: int = 500
    # After the answer: by default, listen to the screening prompt and accept with 1.
    steps: tuple[Step, ...] = (Listen(), Press("1"), AwaitEnd(600.0))

    def to_json(self) -> dict[str, Any]:
        return {"answer": self.answer, "busy": self.busy, "ring_ms": self.ring_ms,
                "steps": [step_to_json(s) for s in self.steps]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Phone:
        return cls(answer=data["answer"], busy=data["busy"], ring_ms=data["ring_ms"],
                   steps=tuple(step_from_json(s) for s in data["steps"]))


BUSY = Phone(busy=True, steps=())
NO_ANSWER = Phone(answer=False, steps=())
VOICEMAIL = Phone(steps=(AwaitEnd(600.0),))  # answers and never presses anything


@dataclass(frozen=True)
class PhoneBook:
    """Phones by dialled number (digits only), and what every other number does."""

    phones: dict[str, Phone] = field(default_factory=dict)
    default: Phone = BUSY

    def __post_init__(self) -> None:
        for number in self.phones:
            if not number.isdigit():
                raise ValueError(f"phone numbers here are digits only: {number!r}")

    def for_number(self, number: str) -> Phone:
        return self.phones.get(number, self.default)

    def to_json(self) -> dict[str, Any]:
        return {"phones": {n: p.to_json() for n, p in self.phones.items()},
                "default": self.default.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PhoneBook:
        return cls({n: Phone.from_json(p) for n, p in data["phones"].items()},
                   Phone.from_json(data["default"]))
