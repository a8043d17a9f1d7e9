"""Sealed columns on SQLite: plaintext to the code, cipher text on disk, bound to the row."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from crypto_helpers import CALLER, DOB, own_keyring, settings_in
from sqlalchemy import insert, text, update
from sqlalchemy.exc import IntegrityError, StatementError

from ivr.db.engine import Database
from ivr.db.models import Call, OncallLeg
from ivr.db.sealed import SealError, sealed_values
from ivr.oncall import callbacks
from ivr.records import calls
from ivr.secure import crypto


async def _call(db: Database, caller: str = CALLER, uniqueid: str = "u1") -> str:
    call_id = await calls.start_call(db, uniqueid=uniqueid, node="n", dialled="+16175550100",
                                     forwarded_from="", caller=caller,
                                     started_at=datetime.now(UTC))
    await calls.save_intake(db, call_id, "callback", source="caller_id", value=caller,
                            confirmed=True)
    await calls.save_intake(db, call_id, "dob", source="keyed", value=DOB)
    return call_id


async def _raw(db: Database, sql: str) -> list[tuple]:
    async with db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql))).all()]


@pytest.fixture
async def db(tmp_path, databases):
    settings = settings_in(tmp_path, databases)
    with own_keyring(settings) as made:
        database = Database(settings.database_url)
        await database.create()
        database.key_file = made  # type: ignore[attr-defined]
        try:
            yield database
        finally:
            await database.close()


async def test_round_trip_reads_plaintext_and_stores_none(db, tmp_path):
    call_id = await _call(db)
    shown = await calls.show_call(db, call_id)
    assert shown["caller"] == CALLER
    assert shown["intake"]["dob"]["value"] == DOB
    assert shown["intake"]["callback"]["value"] == CALLER
    intake = await callbacks.intake_of(db, call_id)
    assert intake["dob"].value == DOB
    stored = await _raw(db, "SELECT caller, caller_index FROM calls")
    values = await _raw(db, "SELECT value FROM intake_fields")
    for (value,) in [*values, stored[0][:1]]:
        assert crypto.is_sealed_text(value) and "1990" not in value and "617555" not in value
    assert stored[0][1] and len(stored[0][1]) == 32
    # A second capture of a field replaces its value, sealed again.
    await calls.save_intake(db, call_id, "dob", source="keyed", value="1991-02-03")
    assert (await calls.show_call(db, call_id))["intake"]["dob"]["value"] == "1991-02-03"


async def test_a_value_moved_to_another_row_does_not_open(db):
    first, second = await _call(db, uniqueid="u1"), await _call(db, "+16175550143", "u2")
    # Copy one patient's sealed date of birth over the other's, as an attacker with the
    # database file (but no key) could.
    async with db.engine.begin() as conn:
        await conn.execute(text(
            "UPDATE intake_fields SET value = (SELECT value FROM intake_fields WHERE "
            "call_id = :a AND field = 'dob') WHERE call_id = :b AND field = 'dob'"),
            {"a": first, "b": second})
    assert (await calls.show_call(db, first))["intake"]["dob"]["value"] == DOB
    with pytest.raises(crypto.CryptoError, match=f"intake_fields.value:{second}:dob"):
        await calls.show_call(db, second)


async def test_a_tampered_value_does_not_open(db):
    call_id = await _call(db)
    (sealed,), = await _raw(db, "SELECT caller FROM calls")
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE calls SET caller = :v"), {"v": flipped})
    with pytest.raises(crypto.CryptoError):
        await calls.show_call(db, call_id)


async def test_writes_outside_the_orm_are_refused(db):
    await _call(db)
    with pytest.raises(StatementError) as caught:
        async with db.session() as s:
            await s.execute(update(Call).values(caller="+16175550199"))
    assert isinstance(caught.value.orig, SealError)
    assert "+16175550199" not in str(caught.value.orig)


async def test_legacy_plaintext_is_read_until_sealed(db):
    call_id = await _call(db)
    async with db.engine.begin() as conn:  # as a version before sealing left it
        await conn.execute(text("UPDATE calls SET caller = '+16175550144', caller_index = NULL"))
        await conn.execute(text("UPDATE intake_fields SET value = '1980-05-06' "
                                "WHERE field = 'dob'"))
    shown = await calls.show_call(db, call_id)
    assert shown["caller"] == "+16175550144" and shown["intake"]["dob"]["value"] == "1980-05-06"
    # The next write of a field seals it.
    await calls.save_intake(db, call_id, "dob", source="keyed", value="1980-05-07")
    (value,), = await _raw(db, "SELECT value FROM intake_fields WHERE field = 'dob'")
    assert crypto.is_sealed_text(value)


async def test_calls_are_found_by_caller_through_the_blind_index(db):
    await _call(db, CALLER, "u1")
    await _call(db, "+16175550143", "u2")
    await _call(db, CALLER, "u3")
    anonymous = await _call(db, "", "u4")
    found = await calls.list_calls(db, caller=CALLER)
    assert sorted(c["uniqueid"] for c in found) == ["u1", "u3"]
    assert await calls.list_calls(db, caller="+16175550199") == []
    assert (await calls.show_call(db, anonymous))["caller"] == ""
    assert await _raw(db, f"SELECT caller, caller_index FROM calls WHERE id = '{anonymous}'") \
        == [("", None)]


async def test_clinician_leg_numbers_are_sealed(db):
    from ivr.db.models import LEG_PATIENT, LEG_PLACING

    call_id = await _call(db)
    async with db.session() as s:
        s.add(OncallLeg(id="leg1", call_id=call_id, kind=LEG_PATIENT, practice_id="p",
                        number=CALLER, channel_id="ch1", status=LEG_PLACING,
                        placed_at=datetime.now(UTC)))
    (number,), = await _raw(db, "SELECT number FROM oncall_legs")
    assert crypto.is_sealed_text(number) and "617555" not in number
    legs = await callbacks.legs_of_call(db, call_id)
    assert legs[0]["number"] == CALLER
    async with db.session() as s:  # an update of other columns leaves the value as it is
        row = await s.get(OncallLeg, "leg1")
        row.status = "answered"
    assert await _raw(db, "SELECT number FROM oncall_legs") == [(number,)]


async def test_a_refused_statement_does_not_carry_its_values(db):
    """An error text reaches logs: a clash (two writers starting one call) names the
    statement, not its values."""
    call_id = await _call(db, CALLER, "u1")
    row = sealed_values(Call, {"id": call_id, "uniqueid": "u-hostile'", "node": "n",
                               "dialled": "+16175550100", "forwarded_from": "+16175550111",
                               "caller": CALLER, "started_at": datetime.now(UTC)})
    with pytest.raises(IntegrityError) as refused:
        async with db.write() as conn:
            await conn.execute(insert(Call), row)
    said = str(refused.value)
    for value in ("6175550100", "6175550111", CALLER[-10:], "u-hostile", "ivr1:"):
        assert value not in said
