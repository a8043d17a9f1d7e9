"""What the caller hears: prompt files made ahead of time, and playing them on a channel.

Every prompt the rules name is prepared when the rules load (Controller wires
`PromptLibrary.prepare_rules` to the rules runtime's on_loaded hook, run in a thread):
a practice's recording (prompt.file, converted to 8 kHz mono) when it supplies one, else
espeak-ng speech of the text. Files are named by content, so a call that still holds
the previous rules after a reload finds its prompts, and nothing is generated twice.

Placeholders: {practice} is fixed per practice and rendered before generation.
{callback_time} and {closing_time} vary per call: the text is split around them, the
pieces are prepared ahead, and the time itself is spoken by Asterisk (SAY DATETIME with
an instant and the practice's zone we computed) plus the core sounds "today"/"tomorrow".
No speech is ever synthesised while a caller waits, except in the rare race where a call
needs a text whose preparation has not finished; then it is made on the spot (logged).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ivr import contract
from ivr import texts as builtin
from ivr.agi.protocol import AgiChannel, AgiHangup
from ivr.pbx import prompts as tts
from ivr.rules.languages import choice_keys
from ivr.rules.model import Practice, RuleSet
from ivr.rules.prompts import default_prompts, render
from ivr.secure import files
from ivr.texts import en

log = logging.getLogger(__name__)

ALL_KEYS = "0123456789*#"
PER_CALL = ("callback_time", "closing_time")
_SPLIT = re.compile(r"(\{(?:callback_time|closing_time)\})")

#: The controller's own wording (ivr.texts.en).
FLOW_TEXTS = en.FLOW

#: Per-practice words a clinician hears first ({practice} filled in when prepared).
SCREEN_INTROS = en.SCREEN_INTROS

#: Prompt plans kept (practices x prompts x languages of a few rules loads).
PLANS_KEPT = 4096
#: Asterisk's core sounds used around spoken times.
CORE_TODAY = "digits/today"
CORE_TOMORROW = "digits/tomorrow"


@dataclass(frozen=True)
class PlayFile:
    path: str  # as Asterisk sees it, without extension


@dataclass(frozen=True)
class SayDigits:
    digits: str


@dataclass(frozen=True)
class SayTime:
    """An instant spoken by Asterisk in a zone: `fmt` is SayUnixTime's format."""

    epoch: int
    zone: str
    fmt: str


@dataclass(frozen=True)
class SayNumber:
    """A count, spoken as a number by Asterisk ("twelve", not "one two")."""

    number: int


Item = PlayFile | SayDigits | SayTime | SayNumber


class PromptLibrary:
    """Prompt files in the PBX instance's sounds folder, prepared from rules and texts."""

    def __init__(self, folder: Path, inner_path: Callable[[Path], str], cache_dir: Path,
                 workers: int = 4, hand: Callable[[Path], None] | None = None) -> None:
        self.folder = folder  # host path of <instance>/sounds/ivr
        self.inner_path = inner_path
        # Makes a prepared file (and its folders) readable by Asterisk: files.give_to_pbx.
        self.hand = hand or (lambda _path: None)
        self.cache_dir = cache_dir
        self.workers = workers
        self._recorded: dict[str, Path] = {}  # practice recording (absolute) -> prepared
        self._lock = threading.Lock()
        # What each prompt plays, worked out once (rendering, splitting, hashing and a
        # stat per piece cost ~8 ms of a call's CPU when done at every prompt): by
        # (id of the practice, prompt, language), the practice kept with it so a reused
        # id (rules reloaded, the old practice gone) never matches. Emptied when rules
        # are prepared (their recordings may have changed).
        self._plans: dict[tuple[int, str, str | None],
                          tuple[Practice | None, tuple[Item | str, ...]]] = {}
        self._flows: dict[tuple[str, str | None], PlayFile] = {}
        self._generation = 0  # moved on by every clearing: a plan made across one is not kept

    # --- preparation (threads; never on a caller's time) --------------------------------
    def tts_file(self, text: str, voice: str = en.VOICE) -> Path:
        # English keeps its old names (a cache key without a voice), so prompts prepared
        # before languages existed are found again.
        key = tts.cache_key(text) if voice == en.VOICE else tts.cache_key(text, voice)
        return self.folder / "tts" / f"{key}.wav"

    def _make_tts(self, text: str, voice: str = en.VOICE) -> Path:
        dest = self.tts_file(text, voice)
        if not dest.exists():
            tts.install(text, dest, self.cache_dir, voice)
            self.hand(dest)
        return dest

    def _make_recorded(self, source: Path) -> Path | None:
        """The practice's own recording, converted to what Asterisk plays best."""
        try:
            data = source.read_bytes()
        except OSError:
            return None
        import hashlib

        dest = self.folder / "rec" / f"{hashlib.sha256(data).hexdigest()[:24]}.wav"
        if not dest.exists():
            files.private_dir(dest.parent)
            part = dest.with_suffix(".part.wav")
            sox = shutil.which("sox")
            if sox is None:
                return None
            try:
                subprocess.run([sox, str(source), "-r", "8000", "-c", "1", "-b", "16",
                                str(part)], check=True, capture_output=True, timeout=60)
            except (subprocess.SubprocessError, OSError):
                log.warning("prompt recording %s could not be converted; using its text",
                            source.name)
                return None
            part.replace(dest)
            self.hand(dest)
        return dest

    def texts_for(self, practice: Practice, language: str | None = None) -> list[str]:
        """Every text piece the practice's prompts need in `language` (default: the
        practice's), placeholders split out."""
        out: list[str] = []
        defaults = default_prompts(language or practice.language)
        for pid in set(practice.prompts_in(language)) | {k for k, v in defaults.items() if v}:
            out.extend(piece for kind, piece in self._pieces(practice, pid, language)
                       if kind == "text")
        return out

    def prepare_texts(self, texts: Sequence[str], voice: str = en.VOICE) -> int:
        return self.prepare_voiced([(t, voice) for t in texts])

    def prepare_voiced(self, pieces: Sequence[tuple[str, str]]) -> int:
        """Make the files for (text, voice) pieces; how many distinct ones."""
        unique = sorted({(t, v) for t, v in pieces if t.strip()})
        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(lambda tv: self._make_tts(*tv), unique))
        return len(unique)

    def prepare_rules(self, rules: RuleSet) -> int:
        """Make every prompt file the rules need (and the flow's own, in each language a
        practice speaks); how many texts."""
        languages = {en.VOICE: en} | {
            builtin.for_language(tag).VOICE: builtin.for_language(tag)
            for p in rules.practices.values() for tag in p.offered}
        # A text with a {placeholder} is made once filled in (the language sentence below).
        pieces = [(t, voice) for voice, lang in languages.items() for t in lang.FLOW.values()
                  if "{" not in t]
        # What a clinician hears about a caller's language (in English: the clinician's).
        pieces += [(language_sentence(tag), en.VOICE) for tag in builtin.LANGUAGES]
        texts: list[str] = []
        for practice in rules.practices.values():
            for tag in practice.offered:
                voice = builtin.for_language(tag).VOICE
                pieces.extend((t, voice) for t in self.texts_for(practice, tag))
            if len(practice.offered) > 1:
                pieces.extend(choice_lines(practice.offered))
            texts.extend(render(t, {"practice": practice.name}) for t in SCREEN_INTROS.values())
            recorded = {p.file: p for tag in practice.offered
                        for p in practice.prompts_in(tag).values() if p.file}
            for prompt in recorded.values():
                if prompt.file:
                    source = self._source(practice, prompt.file)
                    made = self._make_recorded(source) if source.exists() else None
                    if made is None:
                        log.warning("practice %s: prompt %s names recording %s, which is "
                                    "missing or unreadable; its text is spoken instead",
                                    practice.id, prompt.id, prompt.file)
                    with self._lock:
                        if made is not None:
                            self._recorded[str(source)] = made
                        else:
                            self._recorded.pop(str(source), None)
        count = self.prepare_voiced(pieces + [(t, en.VOICE) for t in texts])
        self._generation += 1
        self._plans.clear()  # a recording may be new, changed or gone
        return count

    @staticmethod
    def _source(practice: Practice, file: str) -> Path:
        path = Path(file)
        if not path.is_absolute() and practice.source_file:
            path = Path(practice.source_file).resolve().parent / path
        return path

    # --- at call time -------------------------------------------------------------------
    def _pieces(self, practice: Practice | None, pid: str, language: str | None = None
                ) -> list[tuple[str, str]]:
        """('text', piece) and ('slot', placeholder) in order, {practice} filled in; in
        `language` (default: the practice's)."""
        prompt = practice.prompts_in(language).get(pid) if practice is not None else None
        defaults = default_prompts(language or (practice.language if practice else None))
        text = prompt.text if prompt is not None else defaults.get(pid, "")
        if prompt is not None and prompt.text.startswith("[recording "):
            text = defaults.get(pid, "")  # a file without a transcript
        values = {"practice": practice.name if practice is not None else "our office"}
        out: list[tuple[str, str]] = []
        for part in _SPLIT.split(render(text, values)):
            if part.strip("{}") in PER_CALL and part.startswith("{"):
                out.append(("slot", part.strip("{}")))
            elif part.strip(" ,.;:!?"):  # a lone "." after a slot is not worth a file
                out.append(("text", part.strip()))
        return out

    def _file_item(self, text: str, voice: str = en.VOICE) -> PlayFile:
        path = self.tts_file(text, voice)
        if not path.exists():
            # Preparation has not reached this text (a reload raced the call): make it now.
            log.warning("prompt not prepared ahead (%s); generating it now", path.name)
            self._make_tts(text, voice)
        return PlayFile(self.inner_path(path.with_suffix("")))

    def flow(self, key: str, language: str | None = None) -> PlayFile:
        """One of the controller's own prompts (ivr.texts: FLOW), in `language` (a tag
        such as es-US; default English)."""
        found = self._flows.get((key, language))
        if found is None:
            lang = builtin.for_language(language)
            found = self._flows[(key, language)] = self._file_item(lang.FLOW[key], lang.VOICE)
        return found

    def text(self, text: str, language: str | None = None) -> PlayFile:
        return self._file_item(text, builtin.for_language(language).VOICE)

    def language_choice(self, offered: Sequence[str]) -> list[PlayFile]:
        """'For English, press 1. Para español, oprima 2.': each line in its own voice."""
        return [self._file_item(text, voice) for text, voice in choice_lines(offered)]

    def language_note(self, language: str | None) -> PlayFile:
        """'The caller speaks Spanish.' for a clinician (in English)."""
        return self._file_item(language_sentence(language))

    def items(self, practice: Practice | None, pid: str,
              slots: Mapping[str, Sequence[Item]] | None = None,
              language: str | None = None) -> list[Item]:
        """What to play for a rules prompt in `language` (default: the practice's): its
        recording, or its text with slots said."""
        key = (id(practice), pid, language)
        cached = self._plans.get(key)
        if cached is None or cached[0] is not practice:
            generation = self._generation
            cached = (practice, self._plan(practice, pid, language))
            if generation == self._generation:
                if len(self._plans) > PLANS_KEPT:  # old rules' practices: start again
                    self._plans.clear()
                self._plans[key] = cached
        out: list[Item] = []
        for piece in cached[1]:
            if isinstance(piece, str):  # a slot: said by Asterisk, per call
                out.extend((slots or {}).get(piece, ()))
            else:
                out.append(piece)
        return out

    def _plan(self, practice: Practice | None, pid: str,
              language: str | None) -> tuple[Item | str, ...]:
        """A prompt's files in order, its slots by name (str) between them."""
        prompt = practice.prompts_in(language).get(pid) if practice is not None else None
        if prompt is not None and prompt.file and practice is not None:
            with self._lock:
                made = self._recorded.get(str(self._source(practice, prompt.file)))
            if made is not None:
                return (PlayFile(self.inner_path(made.with_suffix(""))),)
        voice = builtin.for_language(language or (practice.language if practice else None)
                                     ).VOICE
        return tuple(self._file_item(piece, voice) if kind == "text" else piece
                     for kind, piece in self._pieces(practice, pid, language))


def language_sentence(language: str | None) -> str:
    """What a clinician is told of a caller's language (a tag, or a primary subtag)."""
    name = builtin.for_language(language).LANGUAGE_NAME
    return render(en.FLOW["screen_language"], {"language": name})


def choice_lines(offered: Sequence[str]) -> list[tuple[str, str]]:
    """(text, voice) of each line of the language choice, in the order offered."""
    out = []
    for key, tag in choice_keys(offered).items():
        lang = builtin.for_language(tag)
        out.append((render(lang.FLOW["language_choice"], {"key": key}), lang.VOICE))
    return out


def say_time(instant: datetime, zone: str, reference: datetime,
             language: str | None = None) -> list[Item]:
    """'8:00 AM tomorrow' / '8:00 AM Friday November 27th', spoken by Asterisk in the
    channel's language (set by ivr.flows.language) with that language's formats; the
    core sounds "today"/"tomorrow" are found in the channel's language too."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    lang = builtin.for_language(language)
    clock: Item = SayTime(int(instant.timestamp()), zone, lang.SAY_CLOCK)
    days = (instant.astimezone(tz).date() - reference.astimezone(tz).date()).days
    if days == 0:
        return [clock, PlayFile(CORE_TODAY)]
    if days == 1:
        return [clock, PlayFile(CORE_TOMORROW)]
    return [clock, SayTime(int(instant.timestamp()), zone, lang.SAY_WEEKDAY_DATE)]


async def play(channel: AgiChannel, items: Sequence[Item], escape: str = "") -> str | None:
    """Play items in order; stop at the first key in `escape` and return it.

    A prompt Asterisk cannot play (result -1 while the caller is still there) is skipped
    and logged: a missing file must not look like a hang-up or stop the call.
    """
    for item in items:
        if isinstance(item, PlayFile):
            trace_prompt(channel, item)
            reply = await channel.command("STREAM FILE", item.path, escape, timeout=125)
        elif isinstance(item, SayDigits):
            reply = await channel.command("SAY DIGITS", item.digits, escape,
                                          timeout=len(item.digits) * 2 + 10)
        elif isinstance(item, SayNumber):
            reply = await channel.command("SAY NUMBER", item.number, escape, timeout=20)
        else:
            reply = await channel.command("SAY DATETIME", item.epoch, escape, item.fmt,
                                          item.zone, timeout=20)
        result = reply.result_int
        if result < 0:
            if channel.hung_up:
                raise AgiHangup("caller hung up during playback")
            log.warning("a prompt could not be played (%s); going on",
                        type(item).__name__)
            continue
        if result > 0:
            return chr(result)
    return None


def trace_prompt(channel: AgiChannel, item: PlayFile) -> None:
    """Log which prompt a call plays: its file's name only (a hash of a prompt's text, or
    a core sound), for tracing a call's language; never a value the caller gave."""
    log.debug("%s: prompt %s", channel.uniqueid, item.path.rsplit("/", 1)[-1])


async def play_lead(channel: AgiChannel, items: Sequence[Item],
                    escape: str) -> tuple[str | None, PlayFile | None]:
    """Play a question but its last prompt file: (the key that stopped it, or None; that
    last file, or None when the question does not end with one and was played whole).
    The caller sends the last file in the command that also takes the answer."""
    last = items[-1] if items else None
    if not isinstance(last, PlayFile):
        return await play(channel, items, escape), None
    key = await play(channel, items[:-1], escape)
    return key, (last if key is None else None)


#: What a file of a Read may be called: ours are content hashes and Asterisk's core
#: sounds. Read's arguments are split at ',' and its files at '&', so anything else keeps
#: to one command per item.
_READ_SAFE = re.compile(r"[A-Za-z0-9_./-]+")
#: The channel variable Read leaves the keys in (read back in the same round trip as
#: READSTATUS).
READ_VARIABLE = "IVR_KEYS"
#: The lead-ins one question's command takes at most (the greeting and the notice).
MAX_LEADS = 2
#: The bound on a Read that waits with the channel's own timeouts (set_key_timeouts).
READ_WAIT_MOST_S = 60.0


def as_files(items: Sequence[Item]) -> list[PlayFile] | None:
    """A question as files only, for one Read: a number read back digit by digit becomes
    Asterisk's own digit sounds (as SAY DIGITS plays them, in the channel's language);
    None when an item is not a file (a time: SAY DATETIME) or a name Read cannot take."""
    out: list[PlayFile] = []
    for item in items:
        if isinstance(item, PlayFile):
            out.append(item)
        elif isinstance(item, SayDigits) and item.digits.isdigit():
            out.extend(PlayFile(f"digits/{d}") for d in item.digits)
        else:
            return None
    if not out or not all(_READ_SAFE.fullmatch(f.path) for f in out):
        return None
    return out


def _read_arguments(channel: AgiChannel, files: Sequence[PlayFile], max_digits: int,
                    timeout_ms: int, any_key: bool) -> tuple[list[str], str, float]:
    """Read's files, most keys and options, its timeout argument ('' for the channel's
    own: set_key_timeouts) and the longest it may wait for keys, in seconds."""
    for item in files:
        trace_prompt(channel, item)
    seconds = timeout_ms / 1000 if timeout_ms > 0 else READ_WAIT_MOST_S
    args = ["&".join(f.path for f in files), str(max_digits), "t" if any_key else ""]
    return args, (f"{seconds:g}" if timeout_ms > 0 else ""), seconds


async def read(channel: AgiChannel, files: Sequence[PlayFile], max_digits: int,
               timeout_ms: int, any_key: bool) -> str:
    """A whole question in one command (the dialplan's Read): its files in order, a key
    stopping them, then keys until `max_digits`, '#' (unless `any_key`: then '#' and '*'
    are keys like the others) or a pause of `timeout_ms`. The keys, '' for none.
    `timeout_ms` 0: the channel's TIMEOUT(response) for the first key and TIMEOUT(digit)
    between keys (set_key_timeouts).

    res_agi drops a key that arrives between two AGI commands, and a loaded controller
    can leave seconds between two prompts of one question, just where a caller who knows
    the menu presses: in one Read there is no such gap, and no round trip per prompt.
    """
    args, wait, seconds = _read_arguments(channel, files, max_digits, timeout_ms, any_key)
    # No timeout argument at all for the channel's own (set_key_timeouts).
    options = ",".join([READ_VARIABLE, *args, "1", *([wait] if wait else [])])
    reply = await channel.exec("Read", options, timeout=125 + seconds * (max_digits + 1))
    if reply.result_int < 0:
        raise AgiHangup("caller hung up during a question")
    return await _read_keys(channel, max_digits, timeout_ms)


async def read_after(channel: AgiChannel, leads: Sequence[Sequence[PlayFile]],
                     files: Sequence[PlayFile], max_digits: int, timeout_ms: int,
                     any_key: bool, key_waits: tuple[int, int]) -> str:
    """`leads` (the greeting, the emergency notice), then the question as `read` asks
    it, in one command and one Read (the dialplan's ivr-ask): no gap between them for a
    key to fall into, and a key during a lead stops it and starts the answer (a caller
    who knows the question types ahead). `key_waits`: the first key's and the next keys'
    waits in ms for `timeout_ms` 0 (what set_key_timeouts set: the subroutine does not
    see it); with a timeout of its own, that is the wait between keys too, also for keys
    typed over the leads. The keys, '' for none."""
    everything = [f for lead in leads for f in lead] + list(files)
    args, wait, seconds = _read_arguments(channel, everything, max_digits, timeout_ms,
                                          any_key)
    first, between = key_waits if timeout_ms <= 0 else (timeout_ms, timeout_ms)
    reply = await channel.gosub(
        contract.CTX_ASK, (*args, wait, f"{first / 1000:g}", f"{between / 1000:g}"),
        timeout=125 * (len(everything) + 1) + seconds * (max_digits + 1))
    # Cut short by a hang-up, the subroutine does not return: "Gosub complete (abnormal
    # exit)", and AGIEXITONHANGUP ends the session right after it.
    if reply.result_int < 0 or "abnormal" in reply.note or channel.hung_up:
        raise AgiHangup("caller hung up during a question")
    return await _read_keys(channel, max_digits, timeout_ms)


async def record_after(channel: AgiChannel, items: Sequence[Item], path: str,
                       silence_s: int, most_s: int) -> None:
    """`items` (a question), the beep and a recording to `path`.wav in one command (the
    dialplan's ivr-record), ended by '#', `silence_s` of silence or `most_s` in all.
    As two commands, a loaded controller left seconds between the question and the
    beep, and a caller who spoke when the question ended was not recorded. Raises
    AgiHangup when the caller hung up (the file keeps what they said)."""
    files = as_files(items)
    if files is None or not _READ_SAFE.fullmatch(path):
        # Not plain file names (an operator's folder with a space in it): two commands.
        await play(channel, items)
        reply = await channel.record_file(path, "wav", "#", most_s * 1000, beep=True,
                                          silence_seconds=silence_s)
        if reply.result == "-1":  # the reply can come before Asterisk's HANGUP line
            raise AgiHangup("caller hung up during the recording")
        return
    for item in files:
        trace_prompt(channel, item)
    reply = await channel.gosub(
        contract.CTX_RECORD, ("&".join(f.path for f in files), path, str(silence_s),
                              str(most_s)),
        timeout=125 * (len(files) + 1) + most_s)
    # As with ivr-ask: a hang-up ends the subroutine abnormally, with no Return.
    if reply.result_int < 0 or "abnormal" in reply.note or channel.hung_up:
        raise AgiHangup("caller hung up during the recording")


async def record_status(channel: AgiChannel) -> str:
    """How the last Record ended (RECORD_STATUS: DTMF, SILENCE, TIMEOUT, ERROR; '' when
    unknown, as after RECORD FILE). Asked only for a recording that came back silent:
    a round trip no voiced recording needs."""
    status = await channel.get_variable("RECORD_STATUS") or ""
    return status if status.isalpha() and status.isupper() else ""


async def _read_keys(channel: AgiChannel, max_digits: int, timeout_ms: int) -> str:
    """The keys a Read left, once it ended (its status read in the same round trip)."""
    got = await channel.get_full_variable(f"${{READSTATUS}}:${{{READ_VARIABLE}}}")
    status, _, keys = (got or "").partition(":")
    if status == "HANGUP" or channel.hung_up:
        raise AgiHangup("caller hung up during a question")
    if status == "ERROR":
        log.warning("a question could not be played (Read failed); waiting for its key")
        return await channel.wait_for_digit(timeout_ms) or ""
    # Only keys come back (Read keeps DTMF digits); anything else is not an answer.
    return "".join(k for k in keys if k in ALL_KEYS)[:max_digits]


async def set_key_timeouts(channel: AgiChannel, first_ms: int, between_ms: int) -> None:
    """The waits a Read with no timeout of its own uses: for the first key after the
    question, and between two keys (a short one: a lone key is taken soon)."""
    await channel.set_variable("TIMEOUT(response)", f"{first_ms / 1000:g}")
    await channel.set_variable("TIMEOUT(digit)", f"{between_ms / 1000:g}")


async def ask(channel: AgiChannel, items: Sequence[Item], escape: str,
              timeout_ms: int) -> str | None:
    """Play a question and wait up to `timeout_ms` after it for one key (any key once it
    has played, as WAIT FOR DIGIT; one of `escape` while it plays); None: no key.

    A question that may be answered with any key and is made of files is one Read.
    Otherwise the last prompt file and the wait are one command (GET OPTION): res_agi
    drops a key that arrives between two commands, and a loaded controller may send its
    next command seconds after a prompt ends, just when a caller who heard the question
    presses.
    """
    files = as_files(items) if escape == ALL_KEYS else None
    if files is not None:
        return await read(channel, files, 1, timeout_ms, any_key=True) or None
    key, last = await play_lead(channel, items, escape)
    if key is not None:
        return key
    if last is None:
        return await channel.wait_for_digit(timeout_ms)
    trace_prompt(channel, last)
    reply = await channel.command("GET OPTION", last.path, escape, timeout_ms,
                                  timeout=125 + timeout_ms / 1000)
    result = reply.result_int
    if result < 0:
        if channel.hung_up:
            raise AgiHangup("caller hung up during a question")
        log.warning("a question's prompt could not be played; waiting for its key")
        return await channel.wait_for_digit(timeout_ms)
    return chr(result) if result > 0 else None
