"""ivr.secure.rekey: a rotation seals everything with the new key, seals legacy plaintext, retires
the old key once unused, and can be interrupted and run again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from crypto_helpers import CALLER, DOB, own_keyring, settings_in, tone_wav
from sqlalchemy import text

from ivr.db.engine import Database
from ivr.records import calls, recordings
from ivr.secure import crypto, keys, rekey


async def _stored_call(db: Database, settings, uniqueid: str) -> str:
    call_id = await calls.start_call(db, uniqueid=uniqueid, node="n", dialled="", caller=CALLER,
                                     forwarded_from="", started_at=datetime.now(UTC))
    await calls.save_intake(db, call_id, "dob", source="keyed", value=DOB)
    path = recordings.seal_bytes(keys.current(), tone_wav(0.2),
                                 settings.recordings_dir / call_id / "name.wav.enc")
    await calls.add_recording(db, call_id, "name", path=str(path), duration_seconds=0.2,
                              size_bytes=path.stat().st_size, peak=1, rms=1.0)
    await calls.save_intake(db, call_id, "name", source="recording", recording_path=str(path))
    return call_id


async def _legacy_call(db: Database, settings) -> tuple[str, bytes]:
    """A call as a version before sealing left it: plain values, a plain .wav."""
    call_id = await _stored_call(db, settings, "legacy")
    wav = tone_wav(0.3)
    plain = settings.recordings_dir / call_id / "reason.wav"
    plain.write_bytes(wav)
    await calls.add_recording(db, call_id, "reason", path=str(plain), duration_seconds=0.3,
                              size_bytes=len(wav), peak=1, rms=1.0)
    await calls.save_intake(db, call_id, "reason", source="recording", recording_path=str(plain))
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE calls SET caller = :c, caller_index = NULL "
                                "WHERE id = :i"), {"c": CALLER, "i": call_id})
        await conn.execute(text("UPDATE intake_fields SET value = :d WHERE call_id = :i "
                                "AND field = 'dob'"), {"d": DOB, "i": call_id})
    return call_id, wav


@pytest.fixture
async def setup(tmp_path, databases):
    settings = settings_in(tmp_path, databases)
    with own_keyring(settings) as made:
        db = Database(settings.database_url)
        await db.create()
        try:
            yield settings, db, made
        finally:
            await db.close()


async def test_rotation_seals_everything_with_the_new_key_and_retires_the_old(setup):
    settings, db, made = setup
    old = made.ring.active
    sealed_call = await _stored_call(db, settings, "u1")
    legacy_call, legacy_wav = await _legacy_call(db, settings)
    before = (await rekey.usage(db, settings.recordings_dir)).per_key()
    assert before == {old: 4, rekey.PLAINTEXT: 3}  # caller + dob per call, 3 recordings

    done = await rekey.rotate(db, settings, settle_seconds=0, env={})
    assert done.added and done.retired == (old,) and done.kept == {}
    assert done.active != old and (done.columns_resealed, done.recordings_resealed) == (4, 3)
    after = await rekey.usage(db, settings.recordings_dir)
    assert after.per_key() == {done.active: 7}
    key_file = keys.read(settings.key_file, settings.data_dir)
    assert list(key_file.ring) == [done.active] and key_file.retired[0]["id"] == old
    assert made.ring.material(old).hex() not in settings.key_file.read_text()

    for call_id in (sealed_call, legacy_call):
        shown = await calls.show_call(db, call_id)
        assert shown["caller"] == CALLER and shown["intake"]["dob"]["value"] == DOB
        for entry in shown["recordings"]:
            assert entry["path"].endswith(".wav.enc")
            assert recordings.key_id(Path(entry["path"])) == done.active
    reason = (await calls.show_call(db, legacy_call))["intake"]["reason"]["recording_path"]
    assert reason.endswith("reason.wav.enc")
    assert recordings.read(Path(reason)) == legacy_wav
    assert not (settings.recordings_dir / legacy_call / "reason.wav").exists()
    # The legacy call got its blind index from the rotation: both are found by number.
    found = await calls.list_calls(db, caller=CALLER)
    assert sorted(c["id"] for c in found) == sorted([legacy_call, sealed_call])


async def test_an_interrupted_rotation_is_finished_by_the_next_run(setup, monkeypatch):
    settings, db, made = setup
    old = made.ring.active
    for n in range(3):
        await _stored_call(db, settings, f"u{n}")

    async def dies(*_args, **_kwargs):
        raise KeyboardInterrupt  # Ctrl-C: the database done, the recordings not yet

    monkeypatch.setattr(rekey, "BATCH", 1)  # one row per transaction: paging is used
    real = rekey.reseal_recordings
    monkeypatch.setattr(rekey, "reseal_recordings", dies)
    with pytest.raises(KeyboardInterrupt):
        await rekey.rotate(db, settings, settle_seconds=0, env={})
    half = keys.read(settings.key_file, settings.data_dir).ring
    assert len(half) == 2 and old in half  # the old key stays while anything needs it
    mixed = (await rekey.usage(db, settings.recordings_dir)).per_key()
    assert mixed == {half.active: 6, old: 3}  # every value readable, one key or the other
    for row in await calls.list_calls(db):
        assert row["caller"] == CALLER

    monkeypatch.setattr(rekey, "reseal_recordings", real)
    done = await rekey.rotate(db, settings, settle_seconds=0, env={})
    assert not done.added and done.active == half.active and done.retired == (old,)
    assert (await rekey.usage(db, settings.recordings_dir)).per_key() == {done.active: 9}


async def test_a_key_still_in_use_is_kept(setup, monkeypatch):
    settings, db, made = setup
    await _stored_call(db, settings, "u1")

    async def nothing(*_args, **_kwargs):
        return 0  # as if a controller sealed these with the old key while this ran

    monkeypatch.setattr(rekey, "reseal_recordings", nothing)
    done = await rekey.rotate(db, settings, settle_seconds=0, env={})
    assert done.retired == () and done.kept == {made.ring.active: 1}
    assert made.ring.active in keys.read(settings.key_file, settings.data_dir).ring


async def test_keys_from_the_environment_cannot_be_rotated(setup):
    settings, db, _ = setup
    with pytest.raises(keys.KeyFileError, match=keys.ENV_KEYS):
        await rekey.rotate(db, settings, settle_seconds=0,
                           env={keys.ENV_KEYS: settings.key_file.read_text()})


async def test_values_under_a_key_no_longer_held_are_refused(setup):
    settings, db, _ = setup
    call_id = await _stored_call(db, settings, "u1")
    stranger = crypto.new_keyring()
    foreign = crypto.seal_text(stranger, CALLER, f"calls.caller:{call_id}")
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE calls SET caller = :v"), {"v": foreign})
    with pytest.raises(crypto.UnknownKeyError, match=stranger.active):
        await calls.show_call(db, call_id)
    assert (await rekey.usage(db, settings.recordings_dir)).per_key()[stranger.active] == 1
