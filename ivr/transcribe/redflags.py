"""Red flags: phrases in a caller's words that may mean an emergency (pure, no I/O).

The built-in phrases per language are in ivr.texts (RED_FLAGS, by topic); a practice adds
its own in its rules. Matching is on words, not characters: case, accents, punctuation
and apostrophes are ignored ("can't" is "cant"), and a word of the text may carry a
plural ending ("seizures" matches "seizure"). A phrase must appear as a whole run of
words, so "stroke" does not match "strokes of luck" only by accident of letters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ivr import texts

PRACTICE_TOPIC = "practice"  # the topic of a phrase from a practice's own list
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_PLURALS = ("s", "es")


@dataclass(frozen=True)
class Flag:
    topic: str  # e.g. "breathing"; "practice" for a practice's own phrase
    phrase: str  # as listed (normalised words)


def words(text: str) -> list[str]:
    """Lower-case words without accents or apostrophes."""
    plain = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    plain = plain.replace("'", "").replace("\u2019", "")
    return [w for w in _NOT_WORD.split(plain) if w]


def normalised(phrase: str) -> str:
    return " ".join(words(phrase))


def flags_for(language: str | None, practice_phrases: Iterable[str] = (),
              use_defaults: bool = True) -> tuple[Flag, ...]:
    """The practice's phrases first, then the built-in ones for the language."""
    out = [Flag(PRACTICE_TOPIC, normalised(p)) for p in practice_phrases if normalised(p)]
    if use_defaults:
        for topic, phrases in texts.for_language(language).RED_FLAGS.items():
            out.extend(Flag(topic, normalised(p)) for p in phrases)
    return tuple(out)


def _same(spoken: str, listed: str) -> bool:
    return spoken == listed or any(spoken == listed + end for end in _PLURALS)


def match(text: str, flags: Sequence[Flag]) -> Flag | None:
    """The first flag (in list order) whose phrase is a run of words in `text`."""
    said = words(text)
    for flag in flags:
        wanted = flag.phrase.split()
        if not wanted:
            continue
        for start in range(len(said) - len(wanted) + 1):
            if all(_same(said[start + i], w) for i, w in enumerate(wanted)):
                return flag
    return None
