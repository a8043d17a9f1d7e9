"""The pjsua2 side: one SIP user agent in this process, and calls that run their steps.

pjsua2 runs here without threads of its own (`threadCnt = 0`, `mainThreadOnly`): one
loop polls the library, reads what each call has heard, and moves its steps on. Every
callback therefore arrives on this thread, where the steps are.
"""

from __future__ import annotations

import json
import re
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pjsua2 as pj

from ivr.caller.hearing import Hearing, WavTail
from ivr.caller.plan import (
    CallPlan,
    Hangup,
    Phone,
    PhoneBook,
    Press,
    Say,
    Step,
)
from ivr.caller.steps import begin, end_verdict, follow, step_name, waiting

CLOCK_RATE = 8000  # telephone audio; the conference bridge runs at the codec's rate
# How long the loop lets the library wait for SIP events when none come. It returns at
# once on one, and media runs on pjmedia's own threads, so this only spaces the steps'
# checks: what the caller hears reaches the WAV file every 250 ms anyway (pjmedia's
# writer buffer). At 10 ms the loop itself cost ~2.5 % of a core per call, more than the
# library's media and clock threads together; at 50 ms about a ninth of that.
POLL_MS = 50
#: A Say step waits at most this many times its file's length (and 5 s) for the player.
SAY_BOUND = 3
FRAME_SAMPLES = 160  # one 20 ms frame at 8 kHz: the player's last read may stop short
#: No packet for this long is a gap in the line (the PBX sends one every 20 ms, silence
#: included, while a call is up).
GAP_S = 0.25
KEY_MS = 250  # pjmedia sends a key as a 160 ms event, then a gap
_REQUEST_USER = re.compile(r"^INVITE sips?:\+?([^@;>\s]+)@")


class EventLog:
    """Events as JSON lines (flushed one by one, so a parent can follow) and in memory."""

    def __init__(self, path: Path | None) -> None:
        self.started = time.monotonic()
        self.items: list[dict[str, Any]] = []
        self._file = path.open("a", encoding="utf-8") if path else None

    def add(self, call: str, event: str, **detail: Any) -> None:
        item = {"t": round(time.monotonic() - self.started, 3), "call": call,
                "event": event, **detail}
        self.items.append(item)
        if self._file:
            self._file.write(json.dumps(item) + "\n")
            self._file.flush()


@dataclass
class Runner:
    """One call's steps, moved on by `tick`; `ok` is set when the call is over."""

    label: str
    steps: list[Step]
    engine: Engine
    workdir: Path
    call: Any = None
    up: bool = False
    ended: bool = False
    ok: bool | None = None
    error: str | None = None
    sip_status: int | None = None
    ended_by: str | None = None
    index: int = 0
    step_at: float = 0.0
    say_s: float = 0.0  # the length of what a Say step plays
    say_samples: int = 0  # and in samples
    say_pos: int = 0  # the furthest sample its player has reached
    say_done: bool = False  # its file played to the end
    hearing: Hearing = field(default_factory=lambda: Hearing(CLOCK_RATE))
    tail: WavTail | None = None
    audio: Any = None
    media_index: int = -1
    rx_packets: int = 0  # RTP packets received, at the last tick that saw the count grow
    rx_at: float = 0.0  # when that was
    gap_at: float = 0.0  # the last tick that found no packet for over GAP_S
    keep: list[Any] = field(default_factory=list)  # pjsua2 objects must outlive the call
    on_confirmed: Callable[[], None] | None = None

    @property
    def heard_path(self) -> Path:
        return self.workdir / f"heard-{self.label}.wav"

    # --- from pjsua2 callbacks ------------------------------------------------------
    def on_state(self) -> None:
        info = self.call.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and not self.up:
            self.up = True
            self._log("answered")
            self._start_step()
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
            self.ended = True
            self.sip_status = int(info.lastStatusCode)
            if self.ended_by is None:
                self.ended_by = "far"
            self._log("ended", by=self.ended_by, status=self.sip_status)
            self._finish_on_end()

    def on_media(self) -> None:
        info = self.call.getInfo()
        for i, media in enumerate(info.media):
            if (media.type == pj.PJMEDIA_TYPE_AUDIO
                    and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE and self.audio is None):
                self.audio = self.call.getAudioMedia(i)
                self.media_index = i
                self.rx_at = self.gap_at = time.monotonic()
                recorder = pj.AudioMediaRecorder()
                recorder.createRecorder(str(self.heard_path))
                self.audio.startTransmit(recorder)
                self.keep.append(recorder)
                self.tail = WavTail(self.heard_path)

    # --- steps ----------------------------------------------------------------------
    def _log(self, event: str, **detail: Any) -> None:
        self.engine.log.add(self.label, event, step=self.index + 1, **detail)

    def _step_name(self) -> str:
        return step_name(self.steps, self.index)

    def _start_step(self) -> None:
        self.step_at = time.monotonic()
        step = begin(self.steps, self.index, self.hearing)
        if isinstance(step, Press):
            self.call.dialDtmf(step.keys)
            self.hearing.mark()
            self._log("pressed", keys=step.keys)
        elif isinstance(step, Say):
            player = pj.AudioMediaPlayer()
            player.createPlayer(step.wav, pj.PJMEDIA_FILE_NO_LOOP)
            player.startTransmit(self.audio)
            self.keep.append(player)
            # Read once, not on every tick.
            self.say_s, self.say_samples = _wav_length(Path(step.wav))
            self.say_pos, self.say_done = 0, False
            self.hearing.mark()
            self._log("saying", wav=Path(step.wav).name)
        elif isinstance(step, Hangup):
            self.ended_by = "us"
            self._log("hanging_up")
            self.call.hangup(pj.CallOpParam())

    def _next(self) -> None:
        self.index += 1
        self._start_step()

    def tick(self, now: float) -> None:
        if self.tail is not None:
            self._follow_line(now)
            self.hearing.feed(self.tail.read())
        if not self.up or self.ended:
            return
        step = self.steps[self.index]
        elapsed = now - self.step_at
        if isinstance(step, Press):
            if elapsed * 1000 >= KEY_MS * len(step.keys):
                self._next()
        elif isinstance(step, Say):
            if self._said(elapsed):
                self.keep[-1].stopTransmit(self.audio)
                self.hearing.mark()
                self._next()
        else:
            follow(waiting(step, self._step_name, elapsed, self.hearing), self._fail,
                   self._log, self._next)

    def _said(self, elapsed: float) -> bool:
        """The player has played its whole file. Counted by its position, not by the
        wall clock: a starved media clock plays a 3 s file in more than 3 s, and a caller
        stopped at 3 s was heard without its last words (beside the hogs "... of one
        hundred and three" reached the transcript without "three"). At the end of the
        file the position goes back to 0, so it is followed from the start; a player
        that cannot be read ends the step on the clock."""
        if not self.say_done:
            try:
                pos = int(self.keep[-1].getPos())
            except pj.Error:
                pos, self.say_done = self.say_pos, True
            if pos < self.say_pos or pos >= self.say_samples - FRAME_SAMPLES:
                self.say_done = True
            self.say_pos = max(pos, self.say_pos)
        if elapsed < self.say_s + 0.1:
            return False
        if self.say_done:
            return True
        if elapsed > SAY_BOUND * self.say_s + 5:
            self._log("said", by="bound", pos=self.say_pos)
            return True  # a player that never ends (cannot happen: NO_LOOP) ends here
        return False

    def _follow_line(self, now: float) -> None:
        """Tell the hearing how long packets have come with no gap (line_steady)."""
        if self.media_index < 0 or self.ended:
            return
        try:
            rx = int(self.call.getStreamStat(self.media_index).rtcp.rxStat.pkt)
        except pj.Error:
            return  # the stream is gone (ending): the hearing keeps its last word
        if rx != self.rx_packets:
            self.rx_packets, self.rx_at = rx, now
        elif now - self.rx_at > GAP_S:
            self.gap_at = now
        self.hearing.line_steady((now - self.gap_at) * 1000)

    def _finish_on_end(self) -> None:
        if self.ok is None:
            self.ok, self.error = end_verdict(self.steps, self.index, self.up,
                                              self.sip_status, self.ended_by or "far")

    def _fail(self, error: str) -> None:
        self.ok = False
        self.error = error
        self._log("failed", error=error)
        if not self.ended:
            self.ended_by = "us"
            self.call.hangup(pj.CallOpParam())


def _wav_length(path: Path) -> tuple[float, int]:
    """A WAV file's length: seconds, samples."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate(), w.getnframes()


class _Call(pj.Call):
    def __init__(self, account: Any, runner: Runner, call_id: int = pj.PJSUA_INVALID_ID):
        super().__init__(account, call_id)
        self.runner = runner

    def onCallState(self, prm: Any) -> None:  # noqa: N802 (pjsua2's names)
        self.runner.on_state()

    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
        self.runner.on_media()


class _Account(pj.Account):
    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine

    def onIncomingCall(self, prm: Any) -> None:  # noqa: N802
        self.engine.incoming(self, prm)


@dataclass
class _Ringing:
    runner: Runner
    phone: Phone
    answer_at: float


class Engine:
    """The library, one UDP transport on 127.0.0.1, and the calls' runners."""

    def __init__(self, workdir: Path, *, port: int = 0, media_port: int = 0,
                 media_ports: int = 40, codec: str = "PCMU", events: Path | None = None,
                 identity: str = "sip:caller@127.0.0.1", name: str = "") -> None:
        self.workdir = workdir
        self.name = name  # in the labels of incoming calls: unique across a bank's agents
        self.log = EventLog(events)
        self.runners: list[Runner] = []
        self.book: PhoneBook | None = None
        self._ringing: list[_Ringing] = []
        self._seq = 0
        ep = self.ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = 32
        cfg.uaConfig.userAgent = "ivr-reacting-caller"
        cfg.logConfig.level = 1  # errors only: the events say what happened
        cfg.logConfig.consoleLevel = 1
        cfg.medConfig.clockRate = CLOCK_RATE
        cfg.medConfig.sndClockRate = CLOCK_RATE
        cfg.medConfig.channelCount = 1
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        ep.libInit(cfg)
        transport = pj.TransportConfig()
        transport.port = port
        transport.boundAddress = "127.0.0.1"
        bound = ep.transportGetInfo(ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport))
        self.port = int(bound.localName.rsplit(":", 1)[1])  # the one chosen when port=0
        ep.audDevManager().setNullDev()  # no sound card; its clock drives the media
        ep.libStart()
        for info in ep.codecEnum2():
            name = info.codecId.split("/")[0]
            ep.codecSetPriority(info.codecId, 255 if name == codec else
                                (200 if name in ("PCMU", "PCMA") else 0))
        self.account_config = pj.AccountConfig()
        self.account_config.idUri = identity
        media = self.account_config.mediaConfig.transportConfig
        media.boundAddress = "127.0.0.1"
        if media_port:
            media.port = media_port
            media.portRange = media_ports
        self.account = _Account(self)
        self.account.create(self.account_config)

    # --- outgoing -------------------------------------------------------------------
    def place(self, plan: CallPlan, uri: str) -> Runner:
        """Dial `uri` as the plan's caller (its own account: From carries the identity)."""
        config = pj.AccountConfig()
        name = "".join(c for c in plan.caller_name if c not in '"\\')
        user = plan.account.user if plan.account else plan.caller_id
        config.idUri = f'"{name}" <sip:{user}@127.0.0.1>'
        config.mediaConfig.transportConfig = self.account_config.mediaConfig.transportConfig
        if plan.account:
            config.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", plan.account.user, 0, plan.account.password))
            if plan.account.register:
                config.regConfig.registrarUri = "sip:" + uri.split("@", 1)[-1]
        account = _Account(self)
        account.create(config)
        if plan.account and plan.account.register:
            self._registered(account)
        runner = Runner("caller", list(plan.steps), self, self.workdir)
        runner.keep.append(account)
        runner.call = _Call(account, runner)
        prm = pj.CallOpParam(True)
        for key, value in plan.headers:
            header = pj.SipHeader()
            header.hName, header.hValue = key, value
            prm.txOption.headers.append(header)
        self.runners.append(runner)
        self.log.add("caller", "dialling", uri=uri)
        runner.call.makeCall(uri, prm)
        return runner

    def _registered(self, account: Any, timeout_s: float = 30) -> None:
        """Wait for the REGISTER's final answer (digest retried by pjsua) and log it;
        the call is placed either way (a refused account's INVITE is refused too)."""
        deadline = time.monotonic() + timeout_s
        while account.getInfo().regStatus < 200 and time.monotonic() < deadline:
            self.ep.libHandleEvents(20)
        info = account.getInfo()
        self.log.add("caller", "registered" if info.regIsActive else "not_registered",
                     status=info.regStatus)

    # --- incoming (phones) ------------------------------------------------------------
    def incoming(self, account: Any, prm: Any) -> None:
        match = _REQUEST_USER.match(prm.rdata.wholeMsg)
        number = match.group(1) if match else "unknown"
        book = self.book or PhoneBook()
        phone = book.for_number(number)
        self._seq += 1
        runner = Runner(f"{number}#{self.name}{self._seq}", list(phone.steps), self, self.workdir)
        runner.call = _Call(account, runner, prm.callId)
        self.runners.append(runner)
        # The caller ID the phone shows (From), for tests of what a clinician sees.
        self.log.add(runner.label, "ringing", number=number,
                     remote=runner.call.getInfo().remoteUri)
        reply = pj.CallOpParam()
        if phone.busy:
            reply.statusCode = 486
            runner.ended_by = "us"
            runner.call.hangup(reply)
            return
        reply.statusCode = 180
        runner.call.answer(reply)
        if phone.answer:
            self._ringing.append(_Ringing(runner, phone,
                                          time.monotonic() + phone.ring_ms / 1000))

    def _answer_due(self, now: float) -> None:
        for ringing in [r for r in self._ringing if r.answer_at <= now]:
            self._ringing.remove(ringing)
            if not ringing.runner.ended:
                reply = pj.CallOpParam()
                reply.statusCode = 200
                ringing.runner.call.answer(reply)

    # --- the loop -------------------------------------------------------------------
    def run(self, done: Callable[[], bool], deadline: float) -> bool:
        """Poll until `done()` or the monotonic `deadline`; False on the deadline."""
        while not done():
            if time.monotonic() > deadline:
                return False
            self.ep.libHandleEvents(POLL_MS)
            now = time.monotonic()
            self._answer_due(now)
            for runner in self.runners:
                runner.tick(now)
        return True

    def close(self) -> None:
        self.ep.hangupAllCalls()
        end = time.monotonic() + 2
        while time.monotonic() < end and not all(r.ended for r in self.runners):
            self.ep.libHandleEvents(20)
        self.ep.libDestroy()
