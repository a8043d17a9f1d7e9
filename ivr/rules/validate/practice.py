"""The practice section: id, name, time zone, country, language and numbers."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import holidays as holidays_pkg
import phonenumbers
import yaml

from ivr.rules.shape import SLUG_RE
from ivr.rules.validate.core import Reader, child
from ivr.rules.validate.tables import PRACTICE_KEYS
from ivr.texts import LANGUAGE_TAGS

_ZONES: frozenset[str] | None = None
ZONE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,3}$")
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})  # files in zoneinfo, not places


def known_zone(name: str) -> bool:
    """True for an IANA zone name (not a file path, a folder or a POSIX TZ string).

    Only names on the IANA list are looked up at all: ZoneInfo opens a file named
    after its key, so 'America' (a folder), '../../etc/passwd', a NUL byte or a
    5,000-character name would otherwise reach the file system and raise OSError.
    """
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) - NOT_ZONES
    if len(name) > 64 or not ZONE_RE.match(name) or name not in _ZONES:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


class PracticeSection(Reader):
    """practice: the id, name, zone, country and numbers."""

    def practice_info(self, node: yaml.Node | None) -> dict[str, Any]:
        f = self.mapping(node, "practice", PRACTICE_KEYS) or {}
        info: dict[str, Any] = {}
        info["id"] = self.text(f.get("id"), "practice.id",
                               "a slug: lowercase letters, digits and dashes", SLUG_RE)
        info["name"] = self.text(f.get("name"), "practice.name")
        tzname = self.text(f.get("timezone"), "practice.timezone")
        if tzname is not None:
            if known_zone(tzname):
                self.tz = ZoneInfo(tzname)
                info["timezone"] = tzname
            else:
                self.c.error(f.get("timezone"), "practice.timezone", tzname,
                             "an IANA time zone such as America/New_York",
                             f"{tzname!r} is not a known time zone")
        country = self.text(f.get("country"), "practice.country",
                            "an ISO 3166 country code, e.g. US")
        if country is not None:
            if country.upper() not in holidays_pkg.list_supported_countries() or \
                    phonenumbers.country_code_for_region(country.upper()) == 0:
                self.c.error(f.get("country"), "practice.country", country,
                             "an ISO 3166 two-letter country code, e.g. US",
                             f"{country!r} is not a supported country")
            else:
                self.country = country.upper()
                info["country"] = self.country
        if "subdivision" in f:
            info["subdivision"] = self.text(f["subdivision"], "practice.subdivision")
        if "language" in f and "languages" in f:
            self.c.error(f["languages"], "practice.languages", None,
                         "either language or languages",
                         "give the languages offered once: language or languages, not both")
        elif "language" in f:
            info["language"] = self.choice(f["language"], "practice.language", LANGUAGE_TAGS)
        elif "languages" in f:
            self.languages = self.language_list(f["languages"])
            info["language"] = self.languages[0] if self.languages else None
        if info.get("language") is not None:
            self.language = info["language"]
            self.languages = self.languages or (self.language,)
        info["dids"] = self.phones(f.get("dids"), "practice.dids", "DID")
        if "dids" in f and not info["dids"] and not self.seq(f["dids"], "practice.dids"):
            self.c.error(f["dids"], "practice.dids", None, "at least one number",
                         "a practice needs at least one DID")
        info["forwarding_numbers"] = self.phones(
            f.get("forwarding_numbers"), "practice.forwarding_numbers", "forwarding number"
        )
        return info

    def language_list(self, node: yaml.Node) -> tuple[str, ...]:
        """practice.languages: known tags, each once, at least one; the first is the default."""
        out: list[str] = []
        items = self.seq(node, "practice.languages", "a list of languages, e.g. [en-US, es-US]")
        for i, item in enumerate(items):
            tag = self.choice(item, child("practice.languages", i), LANGUAGE_TAGS)
            if tag is not None and tag in out:
                self.c.error(item, child("practice.languages", i), tag, "each language once",
                             f"{tag!r} is listed twice")
            elif tag is not None:
                out.append(tag)
        if isinstance(node, yaml.SequenceNode) and not items:
            self.c.error(node, "practice.languages", None, "at least one language",
                         "a practice needs at least one language")
        return tuple(out)
