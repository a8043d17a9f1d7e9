"""Manual overrides: validation, storage, expiry, precedence in the schedule, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from runtime_helpers import EXAMPLES, NOW, SUNNY, SUNNY_DID

from ivr.cli import main as cli
from ivr.db.engine import Database
from ivr.records import overrides
from ivr.records.overrides import OverrideError, check_new
from ivr.rules import load_rules
from ivr.rules.schedule import state_at

NY = ZoneInfo("America/New_York")
H = timedelta(hours=1)
OPEN_FRIDAY = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # 10:00 ET: Sunny's office hours


@pytest.fixture(scope="module")
def rules():
    res = load_rules(EXAMPLES, now=NOW)
    assert res.ok
    return res.rules


@pytest.fixture
async def db(tmp_path, databases):
    database = Database(databases.new(tmp_path / "ivr.sqlite3", at_head=True))
    await database.create()
    try:
        yield database
    finally:
        await database.close()


# --- validation (pure) -------------------------------------------------------------------

def test_check_new_accepts_and_normalises(rules):
    new = check_new(rules, SUNNY, False, NOW + 2 * H, "  staff meeting ", NOW)
    assert (new.start, new.end, new.reason, new.is_open) == (NOW, NOW + 2 * H,
                                                             "staff meeting", False)


@pytest.mark.parametrize("kwargs, message", [
    ({"practice_id": "nope"}, "unknown practice 'nope'; known practices: mesa-family, "
                              "sunny-pediatrics"),
    ({"until": NOW - H}, "is not in the future"),
    ({"until": NOW}, "is not in the future"),
    ({"start": NOW + 3 * H}, "must be after --from"),
    ({"until": NOW + timedelta(days=91)}, "more than 90 days away"),
    ({"reason": "   "}, "--reason must not be empty"),
    ({"reason": "x" * 201}, "201 characters long; at most 200"),
    ({"reason": "closed\nEXTEN=evil"}, "without control characters"),
])
def test_check_new_refuses(rules, kwargs, message):
    args = {"practice_id": SUNNY, "is_open": False, "until": NOW + 2 * H, "reason": "meeting",
            "now": NOW, "start": None} | kwargs
    with pytest.raises(OverrideError) as info:
        check_new(rules, **args)
    assert message in str(info.value)


def test_check_new_refuses_naive_times(rules):
    with pytest.raises(ValueError, match="aware"):
        check_new(rules, SUNNY, False, datetime(2026, 11, 20, 18), "meeting", NOW)


# --- storage -----------------------------------------------------------------------------

async def test_set_list_clear(db, rules):
    new = check_new(rules, SUNNY, False, NOW + 2 * H, "staff meeting", NOW)
    row = await overrides.set_override(db, new, NOW)
    assert row["state"] == "active" and row["mode"] == "closed" and row["id"] == 1
    listed = await overrides.list_overrides(db, NOW)
    assert [r["id"] for r in listed] == [1]
    assert listed[0] | {"created_at": None} == row | {"created_at": None}
    assert await overrides.list_overrides(db, NOW, practice_id="mesa-family") == []

    active = await overrides.active_overrides(db, SUNNY, NOW + H)
    assert len(active) == 1
    ov = active[0]
    assert (ov.start, ov.end, ov.is_open, ov.reason, ov.manual) == (
        NOW, NOW + 2 * H, False, "staff meeting", True)
    assert ov.start.tzinfo is not None  # aware again after the SQLite round trip

    cleared_at = NOW + H
    assert await overrides.clear_overrides(db, SUNNY, cleared_at) == 1
    assert await overrides.clear_overrides(db, SUNNY, cleared_at) == 0
    assert await overrides.active_overrides(db, SUNNY, cleared_at) == ()
    # Before it was cleared it was in force (a dry run of the past stays truthful).
    assert len(await overrides.active_overrides(db, SUNNY, NOW + 30 * timedelta(minutes=1))) == 1
    assert await overrides.list_overrides(db, cleared_at) == []
    everything = await overrides.list_overrides(db, cleared_at, include_past=True)
    assert [r["state"] for r in everything] == ["cleared"]


async def test_expired_override_is_not_active(db, rules):
    new = check_new(rules, SUNNY, False, NOW + H, "fire drill", NOW)
    await overrides.set_override(db, new, NOW)
    later = NOW + 2 * H
    assert await overrides.active_overrides(db, SUNNY, later) == ()
    assert await overrides.active_overrides(db, SUNNY, NOW + H) == ()  # end is exclusive
    assert await overrides.list_overrides(db, later) == []
    assert [r["state"] for r in await overrides.list_overrides(db, later, include_past=True)
            ] == ["expired"]
    assert await overrides.clear_overrides(db, SUNNY, later) == 0


async def test_scheduled_override_is_returned_for_next_change(db, rules):
    t = OPEN_FRIDAY
    new = check_new(rules, SUNNY, False, t + 3 * H, "training", t, start=t + H)
    row = await overrides.set_override(db, new, t)
    assert row["state"] == "scheduled"
    manual = await overrides.active_overrides(db, SUNNY, t)
    st = state_at(rules.practices[SUNNY], t, manual)
    assert st.kind == "open" and st.next_change == t + H


# --- precedence in the schedule ----------------------------------------------------------

async def test_manual_override_closes_an_open_office(db, rules):
    sunny = rules.practices[SUNNY]
    t = OPEN_FRIDAY
    assert state_at(sunny, t).kind == "open"
    await overrides.set_override(db, check_new(rules, SUNNY, False, t + 2 * H,
                                               "power cut", t), t)
    manual = await overrides.active_overrides(db, SUNNY, t + H)
    st = state_at(sunny, t + H, manual)
    assert (st.kind, st.is_open, st.reason) == ("override", False, "manual override: power cut")
    assert st.next_change == t + 2 * H
    assert state_at(sunny, t + 2 * H, manual).kind == "open"  # office hours again

    # The most recent override wins where two overlap.
    half = timedelta(minutes=30)
    await overrides.set_override(db, check_new(rules, SUNNY, True, t + H + half,
                                               "power back", t + H), t + H)
    manual = await overrides.active_overrides(db, SUNNY, t + H)
    assert [o.reason for o in manual] == ["power cut", "power back"]
    assert state_at(sunny, t + H, manual).is_open
    assert not state_at(sunny, t + H + half, manual).is_open  # the first one again


async def test_manual_open_wins_over_a_holiday(db, rules):
    sunny = rules.practices[SUNNY]
    thanksgiving = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # 10:00 ET
    assert state_at(sunny, thanksgiving).kind == "holiday"
    await overrides.set_override(db, check_new(rules, SUNNY, True, thanksgiving + 2 * H,
                                               "open for flu shots", thanksgiving),
                                 thanksgiving)
    manual = await overrides.active_overrides(db, SUNNY, thanksgiving)
    assert state_at(sunny, thanksgiving, manual).is_open
    assert await overrides.active_overrides(db, "mesa-family", thanksgiving) == ()


# --- the command line --------------------------------------------------------------------

def _local(instant: datetime) -> str:
    return instant.astimezone(NY).replace(tzinfo=None).isoformat(timespec="minutes")


def test_cli_set_list_clear(cli_env, capsys):
    until = (datetime.now(UTC) + 3 * H).replace(second=0, microsecond=0)
    assert cli.main(["override", "set", "--practice", SUNNY, "--closed", "--until",
                     _local(until), "--reason", "staff meeting", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    # Wall time without an offset is the practice's local time.
    assert datetime.fromisoformat(row["end"]) == until
    assert row["mode"] == "closed" and row["state"] == "active"

    assert cli.main(["override", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["practice_id"], r["reason"]) for r in rows] == [(SUNNY, "staff meeting")]
    assert cli.main(["override", "list"]) == 0
    assert "reason=staff meeting" in capsys.readouterr().out

    # `ivr simulate` applies it (unless told not to).
    assert cli.main(["simulate", "--to", SUNNY_DID, "--at", "now", "--json"]) == 0
    sim = json.loads(capsys.readouterr().out)
    assert sim["state"]["reason"] == "manual override: staff meeting"
    assert cli.main(["simulate", "--to", SUNNY_DID, "--at", "now", "--json",
                     "--no-overrides"]) == 0
    assert "manual" not in json.loads(capsys.readouterr().out)["state"]["reason"]

    assert cli.main(["override", "clear", "--practice", SUNNY]) == 0
    assert "1 override(s) cleared" in capsys.readouterr().out
    assert cli.main(["override", "clear", "--practice", SUNNY]) == 0
    assert "nothing cleared" in capsys.readouterr().out
    assert cli.main(["override", "list"]) == 0
    assert "no manual overrides" in capsys.readouterr().out
    assert cli.main(["override", "list", "--all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["state"] == "cleared"


def test_cli_simulate_does_not_create_a_database(cli_env, capsys):
    assert cli.main(["simulate", "--to", SUNNY_DID, "--at", "now"]) == 0
    assert not (cli_env / "ivr.sqlite3").exists()


@pytest.mark.parametrize("argv, message", [
    (["--practice", "nope", "--closed", "--until", "2099-01-01T00:00Z"],
     "unknown practice 'nope'; known practices: mesa-family, sunny-pediatrics"),
    (["--practice", SUNNY, "--open", "--until", "2020-01-01T08:00"], "is not in the future"),
    (["--practice", SUNNY, "--open", "--until", "tomorrow"], "times must be ISO date-times"),
    (["--practice", SUNNY, "--open", "--until", "now"], "is not in the future"),
])
def test_cli_set_refuses(cli_env, capsys, argv, message):
    code = cli.main(["override", "set", *argv, "--reason", "meeting"])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not (cli_env / "ivr.sqlite3").exists()  # nothing stored


def test_cli_set_refuses_an_empty_reason(cli_env, capsys):
    until = _local(datetime.now(UTC) + H)
    assert cli.main(["override", "set", "--practice", SUNNY, "--closed", "--until", until,
                     "--reason", " "]) == 2
    assert "--reason must not be empty" in capsys.readouterr().err


def test_cli_set_needs_valid_rules(cli_env, rules_dir, capsys):
    path = rules_dir / f"{SUNNY}.yaml"
    path.write_text(path.read_text().replace("America/New_York", "America/Nowhere", 1))
    with pytest.raises(SystemExit) as info:
        cli.main(["override", "set", "--practice", SUNNY, "--closed", "--until",
                  "2099-01-01T00:00Z", "--reason", "meeting"])
    assert info.value.code == 1
    assert "have 1 error(s)" in capsys.readouterr().err


def test_cli_mode_is_required(cli_env, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["override", "set", "--practice", SUNNY, "--until", "2099-01-01T00:00Z",
                  "--reason", "meeting"])
    assert info.value.code == 2
    assert "one of the arguments --closed --open is required" in capsys.readouterr().err
