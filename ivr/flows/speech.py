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

from ivr.agi.protocol import AgiChannel, AgiHangup
from ivr.pbx import prompts as tts
from ivr.rules.model import Practice, RuleSet
from ivr.rules.prompts import DEFAULT_PROMPTS, render
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
        # Computed once per text or per rules load, read on every call (the hot path):
        # a text's prepared file (kept once it exists: names are by content, nothing
        # removes them while the controller runs), and each practice's prompt pieces.
        self._files: dict[str, PlayFile] = {}
        self._tables: dict[int, tuple[Practice | None, dict[str, list[PlayFile | str]]]] = {}

    # --- preparation (threads; never on a caller's time) --------------------------------
    def tts_file(self, text: str) -> Path:
        return self.folder / "tts" / f"{tts.cache_key(text)}.wav"

    def _make_tts(self, text: str) -> Path:
        dest = self.tts_file(text)
        if not dest.exists():
            tts.install(text, dest, self.cache_dir)
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

    def texts_for(self, practice: Practice) -> list[str]:
        """Every text piece the practice's prompts need (placeholders split out)."""
        out: list[str] = []
        for pid in self._pids(practice):
            out.extend(piece for kind, piece in self._pieces(practice, pid) if kind == "text")
        return out

    def prepare_texts(self, texts: Sequence[str]) -> int:
        unique = sorted({t for t in texts if t.strip()})
        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(self._make_tts, unique))
        return len(unique)

    def prepare_rules(self, rules: RuleSet) -> int:
        """Make every prompt file the rules need (and the flow's own); how many texts."""
        texts = list(FLOW_TEXTS.values())
        for practice in rules.practices.values():
            texts.extend(self.texts_for(practice))
            texts.extend(render(t, {"practice": practice.name}) for t in SCREEN_INTROS.values())
            for prompt in practice.prompts.values():
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
        count = self.prepare_texts(texts + list(self._generic_texts()))
        # Keyed by the practice object (kept alive here, so its id is not reused): a call
        # that still holds the previous rules misses and computes its prompts as before.
        practices: list[Practice | None] = [None, *rules.practices.values()]
        self._tables = {id(p): (p, {pid: self._template(p, pid) for pid in self._pids(p)})
                        for p in practices}
        return count

    def _generic_texts(self) -> list[str]:
        """The default prompts' texts as a call without a practice hears them."""
        return [piece for pid in DEFAULT_PROMPTS for kind, piece in self._pieces(None, pid)
                if kind == "text"]

    @staticmethod
    def _pids(practice: Practice | None) -> set[str]:
        own = set(practice.prompts) if practice is not None else set()
        return own | {k for k, v in DEFAULT_PROMPTS.items() if v}

    @staticmethod
    def _source(practice: Practice, file: str) -> Path:
        path = Path(file)
        if not path.is_absolute() and practice.source_file:
            path = Path(practice.source_file).resolve().parent / path
        return path

    # --- at call time -------------------------------------------------------------------
    def _pieces(self, practice: Practice | None, pid: str) -> list[tuple[str, str]]:
        """('text', piece) and ('slot', placeholder) in order, {practice} filled in."""
        prompt = practice.prompts.get(pid) if practice is not None else None
        text = prompt.text if prompt is not None else DEFAULT_PROMPTS.get(pid, "")
        if prompt is not None and prompt.text.startswith("[recording "):
            text = DEFAULT_PROMPTS.get(pid, "")  # a file without a transcript
        values = {"practice": practice.name if practice is not None else "our office"}
        out: list[tuple[str, str]] = []
        for part in _SPLIT.split(render(text, values)):
            if part.strip("{}") in PER_CALL and part.startswith("{"):
                out.append(("slot", part.strip("{}")))
            elif part.strip(" ,.;:!?"):  # a lone "." after a slot is not worth a file
                out.append(("text", part.strip()))
        return out

    def _file_item(self, text: str) -> PlayFile:
        known = self._files.get(text)
        if known is not None:
            return known
        path = self.tts_file(text)
        if not path.exists():
            # Preparation has not reached this text (a reload raced the call): make it now.
            log.warning("prompt not prepared ahead (%s); generating it now", path.name)
            self._make_tts(text)
        item = PlayFile(self.inner_path(path.with_suffix("")))
        self._files[text] = item
        return item

    def flow(self, key: str) -> PlayFile:
        """One of the controller's own prompts (FLOW_TEXTS)."""
        return self._file_item(FLOW_TEXTS[key])

    def text(self, text: str) -> PlayFile:
        return self._file_item(text)

    def items(self, practice: Practice | None, pid: str,
              slots: Mapping[str, Sequence[Item]] | None = None) -> list[Item]:
        """What to play for a rules prompt: its recording, or its text with slots said."""
        table = self._tables.get(id(practice))
        template = table[1].get(pid) if table is not None and table[0] is practice else None
        if template is None:
            template = self._template(practice, pid)
        out: list[Item] = []
        for part in template:
            if isinstance(part, str):
                out.extend((slots or {}).get(part, ()))
            else:
                out.append(part)
        return out

    def _template(self, practice: Practice | None, pid: str) -> list[PlayFile | str]:
        """A rules prompt's files in order, a per-call slot by its name."""
        prompt = practice.prompts.get(pid) if practice is not None else None
        if prompt is not None and prompt.file and practice is not None:
            with self._lock:
                made = self._recorded.get(str(self._source(practice, prompt.file)))
            if made is not None:
                return [PlayFile(self.inner_path(made.with_suffix("")))]
        return [self._file_item(piece) if kind == "text" else piece
                for kind, piece in self._pieces(practice, pid)]


def say_time(instant: datetime, zone: str, reference: datetime) -> list[Item]:
    """'8:00 AM tomorrow' / '8:00 AM Friday November 27th', spoken by Asterisk."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    clock: Item = SayTime(int(instant.timestamp()), zone, "IMp")
    days = (instant.astimezone(tz).date() - reference.astimezone(tz).date()).days
    if days == 0:
        return [clock, PlayFile(CORE_TODAY)]
    if days == 1:
        return [clock, PlayFile(CORE_TOMORROW)]
    return [clock, SayTime(int(instant.timestamp()), zone, "ABd")]


async def play(channel: AgiChannel, items: Sequence[Item], escape: str = "") -> str | None:
    """Play items in order; stop at the first key in `escape` and return it.

    A prompt Asterisk cannot play (result -1 while the caller is still there) is skipped
    and logged: a missing file must not look like a hang-up or stop the call.
    """
    for item in items:
        if isinstance(item, PlayFile):
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
