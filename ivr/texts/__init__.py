"""Built-in texts, one module per language (en, es), and the table of languages spoken.

A practice's `language` (a tag such as es-US) picks the module by its primary subtag.
"""

from __future__ import annotations

from types import ModuleType

from ivr.texts import en, es

#: Languages the service speaks: primary subtag -> its texts. The first is the default.
LANGUAGES: dict[str, ModuleType] = {"en": en, "es": es}
DEFAULT_LANGUAGE = "en-US"
#: Tags a practice may give as `language` (validated in ivr.rules.validate.practice).
LANGUAGE_TAGS = ("en-US", "es-US")


def primary(tag: str | None) -> str:
    """'es-US' -> 'es'; None -> the default."""
    return (tag or DEFAULT_LANGUAGE).split("-", 1)[0].lower()


def for_language(tag: str | None) -> ModuleType:
    """The texts for a language tag; an unknown one gets the default's (never fails a call)."""
    return LANGUAGES.get(primary(tag), en)
