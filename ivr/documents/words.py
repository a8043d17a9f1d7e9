"""The caller's words in a note: the machine transcripts of the name and reason, the red
flag they matched, and the caller's language (from a call record, pure).

Every transcript is labelled as a machine's ("automatic transcript, verify against the
recording"): the recording stays the source of truth, and is listed beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ivr import texts
from ivr.texts import en

FIELD_LABELS = {"name": "Name", "reason": "Reason"}


@dataclass(frozen=True)
class Words:
    field: str  # name | reason
    status: str  # done | failed | skipped
    text: str
    note: str  # why there is no text

    @property
    def shown(self) -> str:
        if self.status == "done":
            return f'"{self.text}"' if self.text else "(no words recognised)"
        return f"(no transcript: {self.note or self.status})"

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "status": self.status, "text": self.text,
                "mark": en.TRANSCRIPT_MARK, "note": self.note or None}


def words_of(call: Mapping[str, Any]) -> tuple[Words, ...]:
    rows = [t for t in call.get("transcripts") or [] if isinstance(t, Mapping)]
    order = {f: i for i, f in enumerate(FIELD_LABELS)}
    rows.sort(key=lambda t: order.get(str(t.get("field")), len(order)))
    return tuple(Words(str(t.get("field")), str(t.get("status")), str(t.get("text") or ""),
                       str(t.get("note") or "")) for t in rows)


def red_flag_label(topic: str | None) -> str | None:
    return en.RED_FLAG_LABELS.get(topic, topic) if topic else None


def language_label(tag: str | None) -> str | None:
    """'Spanish' for a caller not spoken to in English; None for English (the default)."""
    if not tag or texts.primary(tag) == texts.primary(None):
        return None
    return texts.for_language(tag).LANGUAGE_NAME


def word_rows(words: tuple[Words, ...], red_flag: str | None,
              language: str | None) -> list[tuple[str, str]]:
    """(label, value) lines of the note, placed beside the recordings."""
    out = [(f"{FIELD_LABELS.get(w.field, w.field)} (automatic transcript)", w.shown)
           for w in words]
    if words:
        out.append(("Transcripts", en.TRANSCRIPT_MARK))
    if red_flag:
        out.append(("Red flag", f"{red_flag_label(red_flag)}, heard in the reason "
                    "(automatic transcript)"))
    if language_label(language):
        out.append(("Caller's language", str(language_label(language))))
    return out


def brief_words(words: tuple[Words, ...]) -> str | None:
    """One line for the morning report, e.g. 'Name: "Alex Smith". Reason: "..." (automatic
    transcript, verify against the recording)'."""
    done = [f"{FIELD_LABELS.get(w.field, w.field)}: {w.shown}" for w in words]
    if not done:
        return None
    return ". ".join(done) + f" ({en.TRANSCRIPT_MARK})"
