"""The intake steps: callback number, date of birth, name and reason.

Each step asks, checks, reads back and confirms within the rules' timeout and retries;
when the retries run out the call goes on with what it has rather than ending. Values are
written the moment they are captured, committed while the caller hears the next prompt
and before the next answer is taken (Session.soon), and never logged or put in the
timeline.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time
from pathlib import Path

import phonenumbers

from ivr.agi.protocol import AgiHangup
from ivr.db.kinds import Source
from ivr.db.models import SOURCE_CALLER_ID, SOURCE_KEYED, SOURCE_RECORDING
from ivr.flows.audio import AudioStats, analyse
from ivr.flows.saydate import date_files
from ivr.flows.session import Session
from ivr.flows.speech import (
    ALL_KEYS,
    Item,
    PlayFile,
    SayDigits,
    SayTime,
    as_files,
    ask,
    play,
    play_lead,
    read,
    read_after,
    record_after,
    record_status,
    set_key_timeouts,
    trace_prompt,
)
from ivr.records import calls
from ivr.records.recordings import sealed_path, take
from ivr.rules.model import normalise_number
from ivr.secure import keys
from ivr.texts import for_language

log = logging.getLogger(__name__)

DIGITS = "0123456789"
MAX_NUMBER_DIGITS = 15  # E.164's limit
ACCEPT_WAIT_MS = 1500  # after "1": a pause means "yes, that number"; more keys, a new one
#: A recording ends after this much silence. Asterisk counts it from the beep, not from
#: the end of the voice (Record's silence), so it is also how long a caller may pause
#: before speaking: 3 s cut off callers who took a breath first (and a starved line's
#: late audio); 5 s is still short next to a voicemail's usual 10.
SILENCE_SECONDS = 5
MAX_AGE_YEARS = 125
SPOOL_INTAKE_DIR = "ivr-intake"


# --- pure checks -------------------------------------------------------------------------

def parse_dob(digits: str, today: date) -> date | None:
    """MMDDYYYY as a real date, not in the future, not more than 125 years ago."""
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        dob = date(int(digits[4:]), int(digits[:2]), int(digits[2:4]))
    except ValueError:
        return None
    if dob > today or today.year - dob.year > MAX_AGE_YEARS:
        return None
    return dob


def spoken_number(e164: str) -> str:
    """The digits a caller would dial at home: the national form, digits only (an
    unvalidated caller ID that does not parse: its own digits)."""
    try:
        num = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "".join(c for c in e164 if c.isdigit())
    national = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(c for c in national if c.isdigit())


def dob_item(dob: date, language: str | None = None) -> SayTime:
    """Asterisk reads a date back from an instant: noon UTC of that day, said in UTC,
    in the caller's language's order ("January 2 1990", "2 de enero de 1990")."""
    epoch = int(datetime.combine(dob, time(12), tzinfo=UTC).timestamp())
    return SayTime(epoch, "UTC", for_language(language).SAY_DATE)


def dob_readback(dob: date, language: str | None = None) -> list[Item]:
    """The date of birth as Asterisk's own sound files when the language's rules are
    known (the confirmation is then one Read), else as SAY DATETIME (dob_item)."""
    lang = for_language(language)
    files = date_files(dob, lang.ASTERISK_LANGUAGE, lang.SAY_DATE)
    if files is None:
        return [dob_item(dob, language)]
    return [PlayFile(f) for f in files]


# --- keypad helpers ----------------------------------------------------------------------

async def read_keys(s: Session, first: str | None, max_digits: int,
                    timeout_ms: int) -> str:
    """Keys until '#', `max_digits` digits, or a pause of `timeout_ms`; '#' is dropped.

    Asterisk collects the keys itself (one GET DATA, no prompt): a key that arrives
    between two AGI commands is dropped by res_agi, and a loaded controller's round trip
    can be longer than the gap between two presses of a fast typist.
    """
    if first == "#":
        return ""
    keys = first or ""
    if len(keys) >= max_digits:
        return keys
    rest, _timed_out = await s.channel.get_data("", timeout_ms, max_digits - len(keys),
                                                prompt_seconds=0)
    return keys + rest


async def read_answer(s: Session, items: list[Item], max_digits: int,
                      timeout_ms: int) -> str:
    """A question answered with several keys (a date, a number): until '#', `max_digits`
    digits or a pause of `timeout_ms`. Its last prompt and the keys are one GET DATA, so
    Asterisk hears every key, pressed during the prompt or after it; a key during an
    earlier prompt starts the answer (read_keys). Made of files only, it is one Read.
    Handed on once the call's earlier writes are committed (Session.soon)."""
    answer = await _keyed_answer(s, items, max_digits, timeout_ms)
    await s.settle()
    return answer


async def read_question(s: Session, files: list[PlayFile], max_digits: int,
                        timeout_ms: int) -> str:
    """A question of files in one command, after the call's pending leads (the greeting
    and the emergency notice) when there are: one Read, no gap between them, and keys
    typed over a lead are the answer's."""
    lead = s.take_lead()
    if not lead:
        await s.flush_lead()
        return await read(s.channel, files, max_digits, timeout_ms, any_key=False)
    keys = await read_after(s.channel, lead, files, max_digits, timeout_ms, any_key=False,
                            key_waits=(s.timeout_ms, ACCEPT_WAIT_MS))
    s.lead_heard()
    return keys


async def _keyed_answer(s: Session, items: list[Item], max_digits: int,
                        timeout_ms: int) -> str:
    files = as_files(items)
    if files is not None:
        return await read_question(s, files, max_digits, timeout_ms)
    await s.flush_lead()
    key, last = await play_lead(s.channel, items, DIGITS + "#")
    if last is None:
        return await read_keys(s, key, max_digits, timeout_ms)
    trace_prompt(s.channel, last)
    digits, _timed_out = await s.channel.get_data(last.path, timeout_ms, max_digits)
    return digits


async def confirm(s: Session, readback: list[Item]) -> str | None:
    """'You entered <readback>. Correct: 1, again: 2' -> '1', '2', other key or None
    (once the value read back is committed: it was written while the caller heard it)."""
    answer = await ask(s.channel, [s.flow("you_entered"), *readback, s.flow("confirm")],
                       ALL_KEYS, s.timeout_ms)
    await s.settle()
    return answer


# --- the steps ---------------------------------------------------------------------------

async def ask_callback(s: Session) -> None:
    """Offer the caller ID back ('press 1'), or take a keyed number, validated and confirmed."""
    tries = s.intake.retries + 1
    keyed: str | None = None  # a valid keyed number, stored but not confirmed yet
    items: list[Item]
    for attempt in range(1, tries + 1):
        if s.caller_e164:
            items = [s.flow("offer_caller_id"), SayDigits(spoken_number(s.caller_e164)),
                     s.flow("offer_caller_id_end")]
            typed = await _offer(s, items)
            key = typed[:1] or None
            if typed == "1":  # that number
                s.soon(calls.save_intake(s.db, s.call_id, "callback", value=s.caller_e164,
                                         source=SOURCE_CALLER_ID, confirmed=True,
                                         attempts=attempt))
                return
            digits = typed
        else:
            # No caller ID: a number to key, heard whole by one GET DATA ('#' alone: none).
            items = (s.prompt("unknown_caller") if attempt == 1 else []) + \
                s.prompt("ask_callback")
            key = await read_answer(s, items, MAX_NUMBER_DIGITS, s.timeout_ms) or None
            digits = key or ""
        if key is None:
            s.event_soon("intake.callback.no_input", attempt=attempt)
            await play(s.channel, [s.flow("no_input")])
            continue
        number = normalise_number(digits, s.regions) if digits.isdigit() else None
        if number is None:
            s.event_soon("intake.callback.invalid", attempt=attempt)
            await play(s.channel, [s.flow("invalid_number")])
            continue
        keyed = number
        s.soon(calls.save_intake(s.db, s.call_id, "callback", value=number,
                                 source=SOURCE_KEYED, confirmed=False, attempts=attempt))
        answer = await confirm(s, [SayDigits(spoken_number(number))])
        if answer == "1":
            s.soon(calls.confirm_intake(s.db, s.call_id, "callback"))
            return
        s.event_soon("intake.callback.not_confirmed", attempt=attempt,
                     answer="none" if answer is None else "other")
    if keyed is None and s.caller_e164:
        # Retries ran out: the caller ID is the best number we have, unconfirmed.
        s.soon(calls.save_intake(s.db, s.call_id, "callback", value=s.caller_e164,
                                 source=SOURCE_CALLER_ID, confirmed=False, attempts=tries))
    s.event_soon("intake.callback.gave_up", kept=Source.KEYED if keyed else
                 (Source.CALLER_ID if s.caller_e164 else "none"))


async def set_timeouts(s: Session) -> None:
    """The channel's own key waits, for the questions that use them (the caller-ID offer):
    the rules' time for a first key, a short pause after a lone key."""
    await set_key_timeouts(s.channel, s.timeout_ms, ACCEPT_WAIT_MS)


async def _offer(s: Session, items: list[Item]) -> str:
    """The caller ID offered back: "1" (yes, that number: a lone 1 and a short pause), a
    number typed instead, or '' (no key); handed on as read_answer's answers are."""
    typed = await _offered(s, items)
    await s.settle()
    return typed


async def _offered(s: Session, items: list[Item]) -> str:
    files = as_files(items)
    if files is not None:
        # One Read takes the lone "1" or a whole number typed at once, which a key-by-key
        # reading loses to res_agi between its commands when the controller is slow.
        return await read_question(s, files, MAX_NUMBER_DIGITS, 0)
    await s.flush_lead()
    key = await ask(s.channel, items, ALL_KEYS, s.timeout_ms)
    if key is None:
        return ""
    if key == "1":
        more = await s.channel.wait_for_digit(ACCEPT_WAIT_MS)
        if more is None:
            return "1"
        return "1" + await read_keys(s, more, MAX_NUMBER_DIGITS - 1, s.timeout_ms)
    return await read_keys(s, key, MAX_NUMBER_DIGITS, s.timeout_ms)


async def ask_dob(s: Session) -> None:
    """Eight digits MMDDYYYY, a real and plausible date, read back and confirmed."""
    tries = s.intake.retries + 1
    zone = s.practice.tz if s.practice is not None else UTC
    today = s.instant.astimezone(zone).date()
    for attempt in range(1, tries + 1):
        digits = await read_answer(s, s.prompt("ask_dob"), 8, s.timeout_ms)
        if not digits:
            s.event_soon("intake.dob.no_input", attempt=attempt)
            await play(s.channel, [s.flow("no_input")])
            continue
        dob = parse_dob(digits, today)
        if dob is None:
            s.event_soon("intake.dob.invalid", attempt=attempt)
            await play(s.channel, [s.flow("invalid_date")])
            continue
        s.soon(calls.save_intake(s.db, s.call_id, "dob", value=dob.isoformat(),
                                 source=SOURCE_KEYED, confirmed=False, attempts=attempt))
        answer = await confirm(s, dob_readback(dob, s.language))
        if answer == "1":
            s.soon(calls.confirm_intake(s.db, s.call_id, "dob"))
            return
        s.event_soon("intake.dob.not_confirmed", attempt=attempt,
                     answer="none" if answer is None else "other")
    s.event_soon("intake.dob.gave_up")


async def ask_recording(s: Session, field: str) -> None:
    """A short recording after the beep; a silent one is asked for once more."""
    max_seconds = s.intake.name_max_seconds if field == "name" else s.intake.reason_max_seconds
    pid = "ask_name" if field == "name" else "ask_reason"
    spool = s.services.pbx.spool_dir / SPOOL_INTAKE_DIR
    await s.flush_lead()  # a recording's question is no Read: the lead plays on its own
    sorry: list[Item] = []  # before the second try: "we did not hear anything"
    for attempt in (1, 2):
        host = spool / f"{s.call_id}-{field}-{attempt}"
        try:
            await record_after(s.channel, [*sorry, *s.prompt(pid)],
                               s.services.pbx.inner_path(host), SILENCE_SECONDS, max_seconds)
            await s.settle()  # an answer: what came before it is committed first
        except AgiHangup:
            # Keep what was said before the hang-up; then let the flow end.
            await _keep(s, field, host.with_suffix(".wav"), attempt, partial=True)
            raise
        if await _keep(s, field, host.with_suffix(".wav"), attempt, partial=False):
            return
        sorry = [s.flow("no_voice")]
    s.event_soon(f"intake.{field}.gave_up")


async def _keep(s: Session, field: str, spooled: Path, attempt: int, partial: bool) -> bool:
    """Keep a recording that holds a voice (True); a silent one is deleted (False).

    Only the voice check is waited for: the sealing into the data folder (a read, an
    encryption and a synced write) and the record's rows follow as `soon` writes, while
    the caller hears the next question. A burst of recordings ending together queued
    their seals in the threads that also serve the other calls' reads, and each caller
    heard that queue as silence after their '#'. Until the seal ends the recording stays
    where Asterisk wrote it (the spool folder, the PBX user's own).
    """
    try:
        stats = await asyncio.get_running_loop().run_in_executor(
            _VOICE_CHECKS, _voice_check, spooled)
    except (OSError, ValueError, EOFError) as exc:
        log.warning("call %s: %s recording unreadable (%s)", s.call_id, field,
                    type(exc).__name__)
        stats = None
    if stats is None or not stats.has_voice:
        # How Record ended (no patient data): a silent recording ended by '#' or by an
        # error tells a different story than one ended by its silence. A caller who hung
        # up has no channel left to ask.
        ended = "" if partial else await record_status(s.channel)
        s.event_soon(f"intake.{field}.silent", attempt=attempt, partial=partial,
                     **({"ended": ended.lower()} if ended else {}))
        return False
    s.soon(_seal(s, field, spooled, stats, attempt, partial))
    return True


async def _seal(s: Session, field: str, spooled: Path, stats: AudioStats, attempt: int,
                partial: bool) -> None:
    """Seal a voiced recording (0600, its folder 0700), then write its rows and hand it
    to the transcriber. A seal that fails (no key, a full disk) is logged and put in the
    call's timeline; the spooled file is left for the operator, and the call goes on."""
    dest = sealed_path(s.services.settings.recordings_dir / s.call_id / f"{field}.wav")
    try:
        ring = keys.current()
        await asyncio.to_thread(take, ring, spooled, dest)
        size = dest.stat().st_size
    except (OSError, keys.KeyFileError) as exc:
        log.warning("call %s: %s recording not sealed (%s)", s.call_id, field,
                    type(exc).__name__)
        await calls.add_event(s.db, s.call_id, f"intake.{field}.unsealed", attempt=attempt)
        return
    await calls.add_recording(s.db, s.call_id, field, path=str(dest),
                              duration_seconds=round(stats.duration_seconds, 2),
                              size_bytes=size, peak=stats.peak, rms=round(stats.rms, 1))
    await calls.save_intake(s.db, s.call_id, field, recording_path=str(dest),
                            duration_seconds=round(stats.duration_seconds, 2),
                            source=SOURCE_RECORDING, confirmed=False, attempts=attempt)
    if partial:
        await calls.add_event(s.db, s.call_id, f"intake.{field}.partial")
    # Words, not only a file: transcribed now in a worker process; the call goes on.
    s.services.transcriber.submit(s.call_id, field, dest, s.language,
                                  s.red_flags() if field == "reason" else ())


#: The voice checks' own threads. In asyncio's shared pool a check queued behind other
#: calls' seals (an encryption and a synced write each), and the caller heard that queue
#: as silence after their '#' (bench_callers, 300 calls at once: 38 of 360 answers over
#: 100 ms were the next question after a recording).
_VOICE_CHECKS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ivr-voice-check")


def _voice_check(spooled: Path) -> AudioStats | None:
    """The spooled file's levels (the check needs the plaintext); a silent one is deleted
    (silence holds no patient data worth keeping). None: nothing was recorded."""
    if not spooled.exists():
        return None
    stats = analyse(spooled)
    if not stats.has_voice:
        spooled.unlink(missing_ok=True)
    return stats


STEPS = {"callback": ask_callback, "dob": ask_dob,
         "name": lambda s: ask_recording(s, "name"),
         "reason": lambda s: ask_recording(s, "reason")}


async def run(s: Session) -> None:
    """Every field the rules collect, in their order; the step is kept for a hang-up."""
    for field in s.intake.collect:
        s.step = f"intake.{field}"
        s.event_soon(f"intake.{field}.asked")  # written while the question is asked
        await STEPS[field](s)  # its writes are committed while the next question plays
    await s.flush_lead()  # no question took it (none collected)
