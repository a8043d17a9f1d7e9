"""A seeded mutator of rules files and calendars, and a runner that sorts the outcomes.

The mutations are the ones a person or a broken export makes (a line lost or doubled,
a value replaced, an indent off, a stray character) plus values picked to reach the
loader's edges: huge numbers, explicit tags, dates at year 1 and 9999, zone names
that are paths, deep nesting, aliases, recurrences every second. The same seed gives
the same cases, so a failure names a case that can be replayed (`replay`).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from ivr.rules import LoadResult, load_rules
from ivr.rules.yamlload import load_plain

INTERNAL = "internal error while checking"
BUDGET_STOP = "checking stopped after"

# Values put in place of a YAML scalar.
YAML_VALUES = [
    "!!int abc", "!!float abc", "!!bool maybe", "!!binary aGk=", "!!python/object:os.system",
    "!!str 10:00", "!!map {}", "!!seq []", "!!set {a}", "!custom x", "!!timestamp 2026-01-01",
    "9" * 4300, "9" * 4301, "-" + "9" * 30, "1e999", ".nan", "-0", "+0", "0x1F", "1_000",
    "99999999999999999999", "18446744073709551617",
    "9999-12-31 23:59-14:00", "9999-12-31 23:59", "0001-01-01 00:00+14:00", "0001-01-01",
    "9999-12-31", "2026-02-30", "2026-02-29 10:00", "2026-13-01 00:00", "2026-11-01 01:30",
    "2026-03-08 02:30", "1900-01-01 00:00+23:59", "2999-12-31 23:59-23:59",
    "America", "America/", "../../etc/passwd", "/etc/localtime", "localtime", "posixrules",
    "Factory", "America/New_York/", "EST5EDT,M3.2.0,M11.1.0", '"America/New\\0York"',
    '"\\0"', '"x\\0y.ics"', "A" * 300, "A" * 5000, "é" * 50, '"\\u202e"', '"\\ufeff"',
    "/dev/zero", "/dev/null", "/proc/self/mem", "/etc", ".", "..", "mesa-family-oncall.ics",
    "~", "null", "true", "false", "yes", "no", "[]", "{}", "[[]]", "{a: {b: {c: []}}}",
    "[" * 60 + "]" * 60, "{a: " * 60 + "1" + "}" * 60, "&a [*a]", "*nope", "&x 1",
    "24:00", "23:60", "00:00-24:00", "17:00-08:00", "08:00-08:00", "25:00-26:00",
    "+16175550100", "+1617555010", "+99999999999999999999", "'+1'", "911", "",
    "'{unknown}'", "'{'", "'}{'", "'{0}'", "'{caller}'", "\"\\t\"", "|\n  block",
    "monday", "nurse", "physician", "urgent", "routine", "*", "'#'", "0", "-1", "121",
]
# Values put in place of a node of the parsed tree (then dumped back as YAML).
DATA_VALUES: list[object] = [
    0, -1, 1, 5, 121, 3651, 2**63, 10**30, -(10**30), 1.5, float("inf"), True, False, None,
    "", " ", "x" * 3999, "x" * 4001, "A\x00B", "\u202e", "é", "America", "UTC", "Etc/GMT+5",
    "../../etc/passwd", "America/Nowhere", "9999-12-31 23:59-14:00", "0001-01-01 00:00+14:00",
    "2026-11-01 01:30", "2026-03-08 02:30", "1900-01-01 00:00", "2999-12-31 23:59",
    "2026-11-20 12:00Z", "12-25", "02-29", "02-30", "00:00-24:00", "17:00-08:00", "10:00",
    "24:00", "+16175550100", "+17205550211", "+442071234567", "nurse", "physician", "urgent",
    "emergency", "monday", "callback_until_acknowledged", "take_message", "open", "closed",
    "mesa-family-oncall.ics", "/dev/zero", "..", "{caller}", "{", [], {}, [[]], ["x"] * 2001,
    {"role": "nurse"}, {"clinician": "dr-holt"}, [{"role": "nurse"}, {"role": "physician"}],
    {"k": "v"}, {str(i): i for i in range(40)},
]


def _paths(data: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [path]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*path, i))
    return out


def _nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


def _mutate_data(rng: random.Random, text: str) -> tuple[str, str] | None:
    """Change one node of the parsed file: the YAML stays well-formed, the rules do not."""
    try:
        data = load_plain(text)
    except (yaml.YAMLError, ValueError):  # not YAML, or over a limit: mutate the text
        return None
    paths = [p for p in _paths(data) if p]
    if not paths:
        return None
    path = rng.choice(paths)
    parent: object = data
    for step in path[:-1]:
        parent = parent[step]  # type: ignore[index]
    last = path[-1]
    op = rng.randrange(6)
    if op <= 2:
        value = rng.choice(DATA_VALUES)
        parent[last] = value  # type: ignore[index]
        what = f"{path}: -> {str(value)[:40]!r}"
    elif op == 3:
        del parent[last]  # type: ignore[attr-defined]
        what = f"{path}: removed"
    elif op == 4:
        other = rng.choice(paths)
        source: object = data
        try:
            for step in other:
                source = source[step]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return None
        parent[last] = source  # type: ignore[index]
        what = f"{path}: <- {other}"
    else:
        depth = rng.choice([3, 45, 55, 300])
        parent[last] = _nested(depth)  # type: ignore[index]
        what = f"{path}: nested {depth} deep"
    try:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=4096), what
    except (yaml.YAMLError, RecursionError, ValueError):
        return None


YAML_CHARS = list(":-[]{},&*!|>'\"%@`#?\t \n\r\x00\x07\x1b\ufeff\u2028\\") + ["\r\n", "  "]

# Lines put into a calendar (an RRULE line replaces another one).
ICS_RRULES = [
    "RRULE:FREQ=MINUTELY", "RRULE:FREQ=SECONDLY", "rrule:freq=minutely",
    "RRULE:FREQ=HOURLY", "RRULE:FREQ=HOURLY;INTERVAL=1;BYMINUTE=0,15,30,45",
    "RRULE:FREQ=DAILY;BYHOUR=" + ",".join(map(str, range(24))) + ";BYMINUTE=0,30",
    "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "RRULE:FREQ=YEARLY;BYYEARDAY=366",
    "RRULE:FREQ=DAILY;COUNT=999999999", "RRULE:FREQ=DAILY;UNTIL=99991231T235959Z",
    "RRULE:FREQ=DAILY;UNTIL=00010101T000000Z", "RRULE:FREQ=WEEKLY;INTERVAL=0",
    "RRULE:FREQ=WEEKLY;INTERVAL=-1", "RRULE:FREQ=WEEKLY;INTERVAL=abc", "RRULE:FREQ=",
    "RRULE:", "RRULE:FREQ=MONTHLY;BYDAY=9FR", "RRULE:FREQ=MONTHLY;BYSETPOS=400",
    "RRULE:FREQ=HOURLY;BYSECOND=" + ",".join(map(str, range(60))),
    "RRULE:FREQ=DAILY;UNTIL=20261201", "RRULE:FREQ=WEEKLY;BYDAY=XX",
]
ICS_LINES = [
    "DTSTART:99991231T235959", "DTEND:99991231T235959", "DTSTART;VALUE=DATE:99991231",
    "DTEND;VALUE=DATE:99991231", "DTSTART:00010101T000000", "DTSTART:garbage",
    "DTSTART;TZID=America:20261106T170000", "DTSTART;TZID=../../etc/passwd:20261106T170000",
    "DTSTART;TZID=Nowhere/Else:20261106T170000", "DURATION:P99999999D", "DURATION:-P1D",
    "DURATION:garbage", "DTEND:20200101T000000", "SUMMARY:", "SUMMARY:nobody",
    "SUMMARY:dr-holt dr-nguyen", "X-CLINICIAN:dr-holt", "EXDATE:garbage",
    "RDATE:" + ",".join(f"20261{m % 2}{1 + m % 28:02d}T1{m % 10}0000" for m in range(200)),
    "BEGIN:VEVENT", "END:VEVENT", "BEGIN:VCALENDAR", "END:VCALENDAR", "BEGIN:VTIMEZONE",
    "BEGIN:STANDARD", "TZOFFSETFROM:+9999", "RECURRENCE-ID:20261106T170000", "UID:",
    "BEGIN:VALARM", "TRIGGER:-PT15M", " folded continuation", "\x00", "A" * 2000,
]


@dataclass(frozen=True)
class Seed:
    """One file to mutate, and the calendar it uses, if any."""

    name: str
    text: str
    ics_name: str | None = None
    ics_text: str | None = None


@dataclass
class Case:
    number: int
    seed: str
    mutations: list[str]
    yaml_text: str
    ics_text: str | None


@dataclass
class Outcome:
    case: Case
    seconds: float
    result: LoadResult | None
    escaped: BaseException | None = None  # an exception out of load_rules (a crash)
    internal: list[str] = field(default_factory=list)  # "internal error" issues (crashes)
    malformed: list[str] = field(default_factory=list)  # issues without a usable location


def seeds(examples: Path, fixtures: Path) -> list[Seed]:
    """The example practices (mesa with its calendar) and every YAML fixture."""
    out = []
    for path in sorted(examples.glob("*.yaml")):
        text = path.read_text()
        ics = next((p for p in examples.glob("*.ics") if p.name in text), None)
        out.append(Seed(path.name, text, ics.name if ics else None,
                        ics.read_text() if ics else None))
    for path in sorted(fixtures.rglob("*.yaml")):
        out.append(Seed(str(path.relative_to(fixtures)), path.read_text()))
    return out


def _mutate_yaml(rng: random.Random, text: str) -> tuple[str, str]:
    if rng.random() < 0.5:
        changed = _mutate_data(rng, text)
        if changed is not None:
            return changed
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    op = rng.randrange(11)
    if op == 0:
        del lines[i]
        return "\n".join(lines), f"delete line {i + 1}"
    if op == 1:
        lines.insert(i, lines[rng.randrange(len(lines))])
        return "\n".join(lines), f"copy a line to {i + 1}"
    if op == 2:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines), f"swap lines {i + 1} and {j + 1}"
    if op == 3:
        lines[i] = (" " * rng.choice([1, 2, 4])) + lines[i] if rng.random() < 0.5 \
            else lines[i][rng.choice([1, 2]):]
        return "\n".join(lines), f"indent line {i + 1}"
    if op in (4, 5, 6, 7):
        # Replace the value after a ': ', '- ', '[' or ', ' on a line.
        line = lines[i]
        spots = [k + len(sep) for sep in (": ", "- ", "[", ", ", "{")
                 for k in range(len(line)) if line.startswith(sep, k)]
        if not spots:
            return _mutate_yaml(rng, text)
        at = rng.choice(spots)
        stop = at
        while stop < len(line) and line[stop] not in ",]}\n":
            stop += 1
        value = rng.choice(YAML_VALUES)
        lines[i] = line[:at] + value + line[stop:]
        return "\n".join(lines), f"line {i + 1}: value -> {value[:40]!r}"
    if op == 8:
        at = rng.randrange(len(text) + 1)
        ch = rng.choice(YAML_CHARS)
        return text[:at] + ch + text[at:], f"insert {ch!r} at {at}"
    if op == 9:
        at = rng.randrange(max(len(text), 1))
        n = rng.randint(1, 8)
        return text[:at] + text[at + n:], f"delete {n} chars at {at}"
    # A whole section nested inside a list or pulled to the top.
    line = lines[i]
    lines[i] = (line.lstrip() if rng.random() < 0.5 else "- " + line)
    return "\n".join(lines), f"restructure line {i + 1}"


def _mutate_ics(rng: random.Random, text: str) -> tuple[str, str]:
    lines = text.split("\r\n")
    i = rng.randrange(len(lines))
    op = rng.randrange(6)
    if op == 0:
        rule = rng.choice(ICS_RRULES)
        at = next((k for k, line in enumerate(lines) if line.startswith("RRULE")), i)
        lines[at] = rule
        return "\r\n".join(lines), f"ics: {rule[:50]}"
    if op == 1:
        new = rng.choice(ICS_LINES)
        lines.insert(i, new)
        return "\r\n".join(lines), f"ics: insert {new[:40]!r} at line {i + 1}"
    if op == 2:
        new = rng.choice(ICS_LINES)
        lines[i] = new
        return "\r\n".join(lines), f"ics: line {i + 1} -> {new[:40]!r}"
    if op == 3:
        del lines[i]
        return "\r\n".join(lines), f"ics: delete line {i + 1}"
    if op == 4:  # many copies of one event
        start = next((k for k, line in enumerate(lines) if line == "BEGIN:VEVENT"), 0)
        end = next((k for k, line in enumerate(lines) if line == "END:VEVENT"), 0) + 1
        copies = rng.choice([2, 50, 600])
        block = lines[start:end] * copies
        return "\r\n".join(lines[:start] + block + lines[start:]), f"ics: event x{copies}"
    at = rng.randrange(len(text) + 1)
    ch = rng.choice([":", ";", "=", ",", "\r\n", "\r\n ", "\x00", "T", "Z", "-"])
    return text[:at] + ch + text[at:], f"ics: insert {ch!r} at {at}"


def cases(seed_files: list[Seed], count: int, seed: int) -> Iterator[Case]:
    """`count` cases, each one to four mutations of one seed file (or of its calendar)."""
    rng = random.Random(seed)
    # The examples are the richest files (mesa has the calendar): three times as often.
    weighted = [s for s in seed_files for _ in range(3 if s.ics_text or "-" in s.name else 1)]
    for number in range(count):
        base = rng.choice(weighted)
        text, ics = base.text, base.ics_text
        done = []
        for _ in range(rng.choice([1, 1, 2, 3, 4])):
            if ics is not None and rng.random() < 0.4:
                ics, what = _mutate_ics(rng, ics)
            else:
                text, what = _mutate_yaml(rng, text)
            done.append(what)
        yield Case(number, base.name, done, text, ics)


def run_case(case: Case, base: Seed, workdir: Path, now: datetime, budget: float,
             load: Callable[..., LoadResult] = load_rules) -> Outcome:
    """Load one case from `workdir` (emptied first) and check what came back."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    target = workdir / Path(base.name).name
    target.write_bytes(case.yaml_text.encode("utf-8", "surrogatepass"))
    if base.ics_name is not None and case.ics_text is not None:
        (workdir / base.ics_name).write_bytes(case.ics_text.encode("utf-8", "surrogatepass"))
    start = time.monotonic()
    try:
        result = load(target, now=now, budget=budget, interrupt=True)
    except BaseException as exc:  # anything at all that escapes is a finding
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Outcome(case, time.monotonic() - start, None, exc)
    out = Outcome(case, time.monotonic() - start, result)
    for issue in (*result.errors, *result.warnings):
        text = str(issue)
        json.dumps(issue.to_json())  # every issue is reportable as JSON
        if INTERNAL in issue.message:
            out.internal.append(text)
        elif not (issue.file and issue.line >= 1 and issue.column >= 1 and issue.message):
            out.malformed.append(text)
    return out


class TracebackKeeper(logging.Handler):
    """Keeps the exceptions load_rules logs (at debug) for its internal errors."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
            self.seen.append(f"{type(exc).__name__}: {str(exc)[:200]} at {where}")
