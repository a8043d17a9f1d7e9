"""The prompt catalogue: every prompt id a practice may set (texts in ivr.texts)."""

from __future__ import annotations

import string
from collections.abc import Mapping
from types import MappingProxyType

from ivr import texts
from ivr.texts import en

# Placeholders a prompt text may use; filled by the call flow (and by simulate).
PLACEHOLDERS = frozenset({"practice", "callback_time", "closing_time"})

DEFAULT_PROMPTS: Mapping[str, str] = MappingProxyType(en.PROMPTS)

# What the flow says to a call no practice claims (ivr.texts.en).
OPERATOR_GREETING_TEXT = en.OPERATOR_GREETING
OPERATOR_CLOSING_TEXT = en.OPERATOR_CLOSING

DISPOSITION_LABELS: Mapping[str, str] = MappingProxyType(en.DISPOSITION_LABELS)


def default_prompts(language: str | None) -> Mapping[str, str]:
    """The built-in prompt texts in a practice's language (the same ids in each)."""
    return MappingProxyType(texts.for_language(language).PROMPTS)


def placeholders_in(text: str) -> set[str]:
    """Names used as {placeholders} in a prompt text (raises ValueError if malformed)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill placeholders; unknown ones are left visible rather than failing a call."""

    class _Keep(dict[str, str]):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    return text.format_map(_Keep(values))


#: How a generated menu names one choice, per language.
MENU_CHOICE = {"en": "For {label}, press {key}.", "es": "Para {label}, oprima {key}."}


def default_menu_text(options: Mapping[str, str], language: str | None = None) -> str:
    """A menu prompt generated from the key table, e.g. 'For a prescription refill, press 2.'"""
    labels = texts.for_language(language).DISPOSITION_LABELS
    choice = MENU_CHOICE.get(texts.primary(language), MENU_CHOICE["en"])
    return " ".join(choice.format(label=labels[disp], key=key) for key, disp in options.items())
