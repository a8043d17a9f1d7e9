"""Hostile rules files and calendars: a located error every time, never an exception or a hang.

The first cases are the ones a drill of 2,009 mutated files found (crashes, a 1.19 GB
calendar load, a read of /dev/zero); the rest pin each limit in ivr.rules.limits.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
from rules_helpers import EXAMPLES, FIXTURES, NOW, load_text

from ivr.cli.rules import run
from ivr.rules import limits, load_rules
from ivr.rules.yamlload import load_plain

VALID = (FIXTURES / "valid_minimal.yaml").read_text()
ICAL_LINE = 101  # `file: mesa-family-oncall.ics` in routing_rules/mesa-family.yaml


def errors_of(tmp_path: Path, text: str) -> list:
    res = load_text(tmp_path, text)
    assert not res.ok and res.rules is None
    assert res.errors
    for issue in res.errors:  # every one located and printable
        assert issue.file and issue.line >= 1 and issue.column >= 1 and issue.message
        str(issue)
    return res.errors


def one(errors, key: str | None = None, fragment: str = ""):
    found = [e for e in errors if (key is None or e.key == key) and fragment in e.message]
    assert found, [str(e) for e in errors]
    return found[0]


# --- found by the drill --------------------------------------------------------------------

def test_500_levels_of_nesting_is_an_error_not_a_recursion_error(tmp_path):
    text = VALID.replace("monday: [08:00-17:00]", "monday: " + "[" * 500 + "]" * 500)
    issue = one(errors_of(tmp_path, text), fragment="nested deeper than 50 levels")
    assert (issue.line, issue.column) == (10, 59)  # where level 51 opens
    assert issue.expected == "at most 50 levels of nesting"


def test_block_nesting_too(tmp_path):
    deep = "".join(" " * (2 * i) + f"k{i}:\n" for i in range(60))
    one(errors_of(tmp_path, VALID + "intake:\n" + "".join("  " + line + "\n"
                                                           for line in deep.splitlines())),
        fragment="nested deeper")


@pytest.mark.parametrize("value, fragment", [
    ("!!int abc", "'abc' is tagged !!int but is not a whole number"),
    ("!!int 1_000", "is tagged !!int but is not a whole number"),
    ("!!float abc", "is tagged !!float but is not a number"),
    ("!!bool maybe", "is tagged !!bool but is not true or false"),
    ("9" * 4300, "a number of 4,300 digits"),
    ("9" * 4301, "a number of 4,301 digits"),  # int() itself refuses this one
    ("-" + "9" * 25, "a number of 25 digits"),
    ("!!binary aGk=", "the tag !!binary is not used in rules files"),
    ("!!python/object:os.system x", "the tag !!python/object:os.system is not used"),
])
def test_bad_numbers_and_tags(tmp_path, value, fragment):
    text = VALID.replace("attempts: 2", f"attempts: {value}")
    issue = one(errors_of(tmp_path, text), "on_call.escalation[0].attempts", fragment)
    assert (issue.line, issue.column) == (27, 49)


@pytest.mark.parametrize("field, value", [
    ("until", "9999-12-31 23:59-14:00"),
    ("until", "9999-12-31 23:59"),  # local time in New York: past year 9999 in UTC
    ("from", "0001-01-01 00:00+14:00"),
    ("from", "0001-01-01 00:00"),
    ("until", "3000-01-01 00:00"),
])
def test_datetimes_at_the_edges(tmp_path, field, value):
    other = {"from": "2026-12-01 10:00", "until": "2026-12-02 10:00"}
    other[field] = value
    text = VALID + (f"overrides:\n  - {{from: {other['from']}, until: {other['until']}, "
                    "state: closed, reason: x}\n")
    issue = one(errors_of(tmp_path, text), f"overrides[0].{field}", "is out of range")
    assert issue.line == 29 and "a year from 1900 to 2999" in issue.expected


def test_dates_at_the_edges(tmp_path):
    text = VALID.replace("anchor: 2026-11-02", "anchor: 0001-01-01")
    issue = one(errors_of(tmp_path, text), "on_call.rotations[0].anchor", "out of range")
    assert issue.line == 23
    text = VALID.replace("end: 2026-12-26 08:00", "end: 9999-12-31 23:59")
    one(errors_of(tmp_path, text), "on_call.shifts[0].end", "out of range")


def test_nul_byte_in_the_calendar_path(tmp_path):
    text = VALID.replace("  escalation:", '  ical: {file: "x\\0y.ics"}\n  escalation:')
    issue = one(errors_of(tmp_path, text), "on_call.ical.file", "embedded null byte")
    assert (issue.line, issue.column) == (26, 16)


@pytest.mark.parametrize("zone", [
    "America", "America/", "../../etc/passwd", "/etc/localtime", "localtime", "Factory",
    "posixrules", '"America/New\\0York"', "A" * 200, "America/" + "x" * 300,
    "EST5EDT,M3.2.0,M11.1.0", "America/New_York/../New_York", '"\\u202e"',
])
def test_unknown_time_zones(tmp_path, zone):
    text = VALID.replace("timezone: America/New_York", f"timezone: {zone}")
    issue = one(errors_of(tmp_path, text), "practice.timezone", "is not a known time zone")
    assert (issue.line, issue.column) == (5, 13)


def test_real_zone_names_still_load(tmp_path):
    for zone in ("UTC", "Etc/GMT+5", "America/Argentina/Buenos_Aires", "US/Eastern"):
        res = load_text(tmp_path, VALID.replace("America/New_York", zone))
        assert not [e for e in res.errors if e.key == "practice.timezone"], zone


def test_check_prints_no_traceback_for_a_loader_bug(tmp_path, monkeypatch, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(VALID)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("ivr.rules.build_file", broken)
    assert run(["rules", "check", str(path), "--now", "2026-11-20T12:00Z"]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert f"error: {path}:1:1: (top): internal error while checking {path}: " \
           "ZeroDivisionError" in out.out
    assert out.out.count("error: ") == 1


def test_check_prints_no_traceback_when_the_whole_load_fails(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("ivr.cli.rules.load_rules", broken)
    assert run(["rules", "check", str(EXAMPLES), "--json", "--now", "2026-11-20T12:00Z"]) == 1
    out = capsys.readouterr().out
    assert "internal error while checking" in out and "MemoryError" in out


@pytest.mark.parametrize("when", ["garbage", "9999-12-31T23:00-14:00", "0001-01-01T00:00Z"])
def test_check_with_a_bad_now_is_a_usage_error(when, capsys):
    assert run(["rules", "check", str(EXAMPLES), "--now", when]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_check_exit_codes_unchanged(capsys):
    assert run(["rules", "check", str(EXAMPLES), "--now", "2026-11-20T12:00Z"]) == 0
    assert run(["rules", "check", str(FIXTURES / "broken_many.yaml")]) == 1


def test_misspelt_practice_key_is_reported_not_a_crash(tmp_path):
    # Found by the fuzz test: the top-level errors came before the error count was taken.
    text = VALID.replace("\npractice:", "\nactice:")
    issue = one(errors_of(tmp_path, text), "actice", "unknown key 'actice'")
    assert (issue.line, issue.column) == (2, 1)
    one(errors_of(tmp_path, text), "practice", "missing required key")


# --- rules files ---------------------------------------------------------------------------

def test_rules_file_that_is_a_device_or_fifo_is_refused(tmp_path):
    res = load_rules("/dev/zero", now=NOW)
    issue = one(res.errors, fragment="a device, not a regular file")
    assert (issue.file, issue.line, issue.column) == ("/dev/zero", 1, 1)
    fifo = tmp_path / "p.yaml"
    os.mkfifo(fifo)
    one(load_rules(fifo, now=NOW).errors, fragment="a FIFO")  # opened without blocking
    # In a folder, only regular *.yaml files are rules files.
    assert one(load_rules(tmp_path, now=NOW).errors, fragment="no rules files found")


def test_rules_file_over_1_mib_is_refused_unread(tmp_path):
    path = tmp_path / "p.yaml"
    with open(path, "wb") as f:
        f.truncate(limits.MAX_RULES_FILE_BYTES + 1)  # sparse: nothing to read if refused
    one(load_rules(path, now=NOW).errors, fragment="1,048,577 bytes; at most 1,048,576")


def test_not_utf8_and_control_characters_are_located(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_bytes(VALID.encode().replace(b"Fixture Practice", b"Fixture \xff"))
    issue = one(load_rules(path, now=NOW).errors, fragment="not UTF-8")
    assert (issue.line, issue.column) == (4, 17)
    path.write_bytes(VALID.encode().replace(b"Fixture Practice", b"Fixture \x00"))
    issue = one(load_rules(path, now=NOW).errors, fragment="YAML error")
    assert (issue.line, issue.column) == (4, 17)


def test_too_many_files(tmp_path, monkeypatch):
    monkeypatch.setattr("ivr.rules.MAX_RULES_FILES", 3)
    for i in range(4):
        (tmp_path / f"p{i}.yaml").write_text(VALID)
    one(load_rules(tmp_path, now=NOW).errors, fragment="more than 3 *.yaml files")


def test_alias_bomb_is_counted_not_expanded(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):  # 10**9 values once expanded
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    text = VALID.replace("triage:", "prompts:\n  " + "\n  ".join(lines) + "\ntriage:", 1)
    one(errors_of(tmp_path, text), fragment="more than 100,000 values")


def test_alias_that_contains_itself(tmp_path):
    text = VALID.replace("monday: [08:00-17:00]", "monday: &a [*a]")
    one(errors_of(tmp_path, text), fragment="nested too deep")
    with pytest.raises(ValueError):
        load_plain("a: &a [*a]")


def test_long_lists_values_and_keys(tmp_path):
    dids = ", ".join(f'"+161755{i:05d}"' for i in range(limits.MAX_ITEMS + 1))
    text = VALID.replace('dids: ["+16175550400"]', f"dids: [{dids}]")
    one(errors_of(tmp_path, text), "practice.dids", "a list of 2,001 entries")
    text = VALID.replace("name: Fixture Practice", "name: " + "x" * 4001)
    one(errors_of(tmp_path, text), "practice.name", "a value of 4,001 characters")
    text = VALID.replace("  default: urgent", "  default: urgent\n  ? [a, b]\n  : urgent")
    one(errors_of(tmp_path, text), "triage", "a list or mapping used as a key")


# --- calendars -----------------------------------------------------------------------------

@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(EXAMPLES, target)
    return target


def ical_error(rules_dir: Path, fragment: str, **kw):
    res = load_rules(rules_dir, now=NOW, **kw)
    assert not res.ok
    issue = one(res.errors, "on_call.ical.file", fragment)
    assert issue.file.endswith("mesa-family.yaml") and issue.line == ICAL_LINE
    return issue


def event(rrule: str = "", start: str = "20261106T170000", end: str = "20261107T080000",
          uid: str = "u1") -> str:
    return ("BEGIN:VEVENT\r\n" f"UID:{uid}\r\nDTSTAMP:20261101T120000Z\r\n"
            f"DTSTART;TZID=America/Denver:{start}\r\nDTEND;TZID=America/Denver:{end}\r\n"
            + (f"RRULE:{rrule}\r\n" if rrule else "") + "SUMMARY:dr-nguyen\r\nEND:VEVENT\r\n")


def calendar(*events: str) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n" + "".join(events)
            + "END:VCALENDAR\r\n").encode()


ICS = "mesa-family-oncall.ics"


@pytest.mark.parametrize("rule", ["FREQ=MINUTELY", "FREQ=SECONDLY;INTERVAL=3600",
                                  "freq=minutely"])
def test_minutely_and_secondly_are_refused_before_expansion(rules_dir, rule):
    (rules_dir / ICS).write_bytes(calendar(event(rule)))
    issue = ical_error(rules_dir, "on-call events may recur at most hourly")
    assert "line 9:" in issue.message  # the calendar's own line


def test_rules_that_recur_too_often_a_day(rules_dir):
    (rules_dir / ICS).write_bytes(calendar(event("FREQ=DAILY;BYHOUR=1,2,3;BYMINUTE="
                                                 + ",".join(map(str, range(0, 60, 5))))))
    ical_error(rules_dir, "can recur 36 times a day")  # 3 hours x 12 minutes
    (rules_dir / ICS).write_bytes(calendar(event("FREQ=HOURLY;BYMINUTE=0,30")))
    ical_error(rules_dir, "can recur 48 times a day; at most 24 (hourly)")


def test_an_hourly_series_from_1900_is_refused_unexpanded(rules_dir):
    (rules_dir / ICS).write_bytes(calendar(event("FREQ=HOURLY", "19000101T000000",
                                                 "19000101T003000")))
    ical_error(rules_dir, "more than 500,000 instances")


def test_occurrences_in_the_window_are_capped(rules_dir):
    (rules_dir / ICS).write_bytes(calendar(event("FREQ=HOURLY", "20261101T000000",
                                                 "20261101T003000")))
    ical_error(rules_dir, "more than 10,000 on-call events between 2026-09-21 and 2028-11-19")


def test_time_zone_rules_recur_yearly(rules_dir):
    (rules_dir / ICS).write_bytes(
        b"BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:X\r\nBEGIN:STANDARD\r\n"
        b"DTSTART:19700101T000000\r\nRRULE:FREQ=DAILY\r\nTZOFFSETFROM:+0100\r\n"
        b"TZOFFSETTO:+0000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n")
    ical_error(rules_dir, "VTIMEZONE rules recur YEARLY")


@pytest.mark.parametrize("make, fragment", [
    (lambda p: (p.unlink(), p.symlink_to("/dev/zero")), "a device, not a regular file"),
    (lambda p: (p.unlink(), os.mkfifo(p)), "a FIFO, not a regular file"),
    (lambda p: (p.unlink(), p.mkdir()), "a directory, not a regular file"),
    (lambda p: (p.unlink(), p.symlink_to(p.parent)), "a directory, not a regular file"),
    (lambda p: p.unlink(), "No such file or directory"),
    (lambda p: os.truncate(p, limits.MAX_ICAL_FILE_BYTES + 1), "at most 4,194,304"),
])
def test_calendar_must_be_a_small_regular_file(rules_dir, make, fragment):
    make(rules_dir / ICS)
    ical_error(rules_dir, fragment)


def test_calendar_path_to_a_device(rules_dir):
    rewrite = (rules_dir / "mesa-family.yaml").read_text().replace(
        "file: mesa-family-oncall.ics", "file: /dev/zero")
    (rules_dir / "mesa-family.yaml").write_text(rewrite)
    ical_error(rules_dir, "a device")


def test_calendar_structure_limits(rules_dir):
    (rules_dir / ICS).write_bytes(b"BEGIN:VCALENDAR\r\n" + b"BEGIN:X\r\n" * 1000)
    ical_error(rules_dir, "nested deeper than 8 levels")
    many = [event(start=f"2026{1 + i % 12:02d}{1 + i % 28:02d}T000000",
                  end=f"2026{1 + i % 12:02d}{1 + i % 28:02d}T003000", uid=f"e{i}")
            for i in range(limits.MAX_ICAL_EVENTS + 1)]
    (rules_dir / ICS).write_bytes(calendar(*many))
    ical_error(rules_dir, "more than 5,000 events")


def test_calendar_dates_at_the_edges(rules_dir):
    (rules_dir / ICS).write_bytes(calendar(event(start="20261201T000000",
                                                 end="99991231T230000")))
    ical_error(rules_dir, "out of range")
    (rules_dir / ICS).write_bytes(
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:garbage\r\nSUMMARY:dr-nguyen\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n")
    ical_error(rules_dir, "")


def never_matching(events: int) -> bytes:
    return calendar(*[event("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "20261101T170000",
                            "20261101T180000", uid=f"n{i}") for i in range(events)])


def test_the_time_budget_stops_a_slow_calendar(rules_dir):
    (rules_dir / ICS).write_bytes(never_matching(20))  # about 50 s of dateutil
    issue = ical_error(rules_dir, "checking stopped after 0.5 s", budget=0.5, interrupt=True)
    assert issue.expected == "rules that check within 0.5 s"


def test_without_the_timer_the_budget_is_checked_between_series(rules_dir):
    (rules_dir / ICS).write_bytes(never_matching(20))
    ical_error(rules_dir, "checking stopped after 0.5 s", budget=0.5)


def test_the_timer_is_put_back(rules_dir):
    seen = []
    previous = signal.signal(signal.SIGALRM, lambda *a: seen.append(a))
    try:
        # Someone else's SIGALRM handler: the loader does not take the signal over.
        assert load_rules(rules_dir, now=NOW, interrupt=True).ok
        assert signal.getsignal(signal.SIGALRM) is not previous
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert load_rules(rules_dir, now=NOW, interrupt=True).ok
    assert signal.getsignal(signal.SIGALRM) == previous
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert not seen


def test_examples_still_load_with_every_limit(examples):
    assert set(examples.practices) == {"sunny-pediatrics", "mesa-family"}
    assert sys.getrecursionlimit() >= 1000  # nothing here depends on raising it


def test_a_deadline_that_falls_in_a_gc_callback_still_stops_the_load():
    """The interpreter drops an exception raised inside a garbage-collector callback
    (pytest would report it as unraisable): the tick that falls there is skipped and a
    later one stops the load."""
    import gc
    import time

    def slow_callback(phase: str, _info: dict) -> None:
        if phase == "stop":  # a library's callback that the timer lands in
            until = time.monotonic() + 0.3
            while time.monotonic() < until:
                pass

    before = list(gc.callbacks)
    gc.callbacks.append(slow_callback)
    deadline = limits.Deadline(0.05)
    try:
        with pytest.raises(limits.LoadTimeout), limits.interrupting(deadline):
            gc.collect()  # the first tick lands in slow_callback
            while True:
                pass
    finally:
        gc.callbacks.remove(slow_callback)
    assert gc.callbacks == before  # the deadline's own callbacks are gone too
