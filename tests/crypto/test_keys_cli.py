"""`ivr keys init|status|rotate` and `ivr recordings export`, as a person runs them: what
they show, what they audit, and that no key ever appears in their output."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime

from crypto_helpers import (
    CALLER,
    DOB,
    key_strings,
    settings_in,
    tone_wav,
    using_key_file,
)
from support import cli
from support.cli import Ran

from ivr.db.engine import Database
from ivr.records import audit, calls, recordings
from ivr.secure import keys


def _ivr(settings, *args: str) -> Ran:
    """The command in this process (its keyring read from its own settings, as a process
    would: tests/support/cli.py)."""
    env = {k: v for k, v in os.environ.items() if k != keys.ENV_KEYS}
    env.update(IVR_DATA_DIR=str(settings.data_dir), IVR_KEY_FILE=str(settings.key_file),
               IVR_INSTANCE=settings.instance, IVR_DB_URL=settings.db_url)
    return cli.run(args, env)


async def _a_call(settings) -> tuple[str, bytes]:
    db = Database(settings.database_url)
    try:
        await db.create()
        call_id = await calls.start_call(db, uniqueid="u1", node="n", dialled="",
                                         forwarded_from="", caller=CALLER,
                                         started_at=datetime.now(UTC))
        await calls.save_intake(db, call_id, "dob", source="keyed", value=DOB)
        wav = tone_wav(0.5)
        path = recordings.seal_bytes(keys.current(), wav,
                                     settings.recordings_dir / call_id / "name.wav.enc")
        await calls.save_intake(db, call_id, "name", source="recording",
                                recording_path=str(path), duration_seconds=0.5)
        return call_id, wav
    finally:
        await db.close()


async def test_the_key_commands_and_export_never_show_a_key(tmp_path, databases):
    settings = settings_in(tmp_path, databases)
    outputs: list[str] = []

    def run(*args: str, code: int = 0) -> Ran:
        result = _ivr(settings, *args)
        outputs.extend([result.stdout, result.stderr])
        assert result.code == code, result.stderr
        return result

    made = run("keys", "init")
    assert str(settings.key_file) in made.stdout
    run("keys", "init", code=2)  # never overwrites
    first = keys.read(settings.key_file, settings.data_dir)
    with using_key_file(settings):
        call_id, wav = await _a_call(settings)

    status = json.loads(run("keys", "status", "--json").stdout)
    assert status["active"] == first.ring.active and status["plaintext"] == 0
    assert status["keys"][0]["values"] == 3  # caller, date of birth, the recording
    assert status["usage"]["columns"]["intake_fields.value"] == {first.ring.active: 1}

    out = tmp_path / "export" / "name.wav"
    out.parent.mkdir()
    run("recordings", "export", call_id, "name", "--out", str(out))
    assert out.read_bytes() == wav and out.read_bytes().startswith(b"RIFF")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    run("recordings", "export", call_id, "name", "--out", str(out), code=2)  # exists
    run("recordings", "export", call_id, "reason", "--out", str(tmp_path / "r.wav"), code=1)
    entries = json.loads(run("audit", "list", "--action", "recording", "--json").stdout)
    assert [(e["action"], e["subject"], e["detail"]["field"]) for e in entries] == \
        [(audit.RECORDING_READ, call_id, "name")]

    rotated = run("keys", "rotate")
    assert "retired key(s): " + first.ring.active in rotated.stdout
    second = keys.read(settings.key_file, settings.data_dir)
    status = json.loads(run("keys", "status", "--json").stdout)
    assert status["active"] == second.ring.active != first.ring.active
    assert status["keys"] == [{"id": second.ring.active, "active": True,
                               "created": second.created[second.ring.active], "values": 3}]
    assert [e["action"] for e in json.loads(
        run("audit", "list", "--action", "keys", "--json").stdout)] == [audit.KEYS_ROTATE]
    run("keys", "status")
    run("recordings", "export", call_id, "name", "--out", str(out), "--force")
    assert out.read_bytes() == wav

    shown = "\n".join(outputs)
    leaked = [s for s in key_strings(first) + key_strings(second) if s in shown]
    assert leaked == []
    assert CALLER not in shown and DOB not in shown


def test_an_unsafe_key_file_is_refused_with_what_to_do(tmp_path):
    settings = settings_in(tmp_path)
    assert _ivr(settings, "keys", "init").code == 0
    os.chmod(settings.key_file, 0o644)
    result = _ivr(settings, "keys", "status")
    assert result.code == 2 and "chmod 600" in result.stderr
