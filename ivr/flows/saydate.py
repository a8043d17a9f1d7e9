"""A date as Asterisk's own sound files, in the order SayUnixTime would play them.

Why not SAY DATETIME: a read-back made of files joins its question in one Read, so a key
pressed while the date is said, or just after it, is heard (res_agi drops a key that
falls between two commands). The rules below are those of Asterisk's main/say.c for the
format letters this project uses (B, d, Y and quoted file names) in English and Spanish;
any other letter or language gives None, and the caller hears SAY DATETIME as before.
Hand-written: no library renders a number as Asterisk's digit files.
"""

from __future__ import annotations

from datetime import date


def _number_en(n: int) -> list[str]:
    """say.c get_number_str_en, for 1..9999."""
    out: list[str] = []
    if n >= 1000:
        out += _number_en(n // 1000) + ["digits/thousand"]
        n %= 1000
    if n >= 100:
        out += [f"digits/{n // 100}", "digits/hundred"]
        n %= 100
    if n >= 20:
        out.append(f"digits/{n // 10 * 10}")
        n %= 10
    if n:
        out.append(f"digits/{n}")
    return out


def _ordinal_en(n: int) -> list[str]:
    """say.c ast_say_enumeration_full_en, for 1..31 (a day of the month)."""
    if n < 20 or n % 10 == 0:
        return [f"digits/h-{n}"]
    return [f"digits/{n // 10 * 10}", f"digits/h-{n % 10}"]


def _year_en(year: int) -> list[str]:
    """'Y' in English: 2005 as a number, 1985 as 'nineteen eighty five', 1905 with 'oh'."""
    if year >= 2000:
        return _number_en(year)
    rest = year - 1900
    if rest < 1:
        return []  # say.c says nothing for 1900 and before
    return ["digits/19"] + (["digits/oh"] if rest <= 9 else []) + _number_en(rest)


def _number_es(n: int) -> list[str]:
    """say.c ast_say_number_full_es (no gender), for 1..9999."""
    out: list[str] = []
    if n >= 2000:
        out += _number_es(n // 1000)
    if n >= 1000:
        out.append("digits/thousand")
        n %= 1000
    if n == 100:
        return out + ["digits/100"]
    if n > 100:
        out.append("digits/100-and" if n < 200 else f"digits/{n // 100 * 100}")
        n %= 100
    if n > 30:
        out.append(f"digits/{n // 10 * 10}")
        n %= 10
        if n:
            out.append("digits/and")
    if n:
        out.append(f"digits/{n}")
    return out


_RULES = {
    # language: (day of the month, year)
    "en": (_ordinal_en, _year_en),
    "es": (_number_es, _number_es),
}


def date_files(day: date, language: str, fmt: str) -> list[str] | None:
    """The files that say `day` by SayUnixTime format `fmt` in `language` (Asterisk's
    language of the channel); None when a letter or the language is not covered."""
    rules = _RULES.get(language)
    if rules is None:
        return None
    say_day, say_year = rules
    out: list[str] = []
    i = 0
    while i < len(fmt):
        letter = fmt[i]
        if letter == "'":
            end = fmt.find("'", i + 1)
            if end < 0:
                return None
            out.append(fmt[i + 1:end])
            i = end + 1
            continue
        if letter == "B":
            out.append(f"digits/mon-{day.month - 1}")
        elif letter == "d":
            out += say_day(day.day)
        elif letter == "Y":
            out += say_year(day.year)
        elif letter != " ":
            return None
        i += 1
    return out
