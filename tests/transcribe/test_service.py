"""Transcripts made by the real engines in real worker processes, from sealed recordings,
stored sealed: the text, engine, version, confidence and times; a language without a
model and a missing model folder are skipped with a note naming why."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ivr.config import Settings
from ivr.db.engine import Database
from ivr.records import calls, recordings
from ivr.secure import keys
from ivr.transcribe.redflags import flags_for
from ivr.transcribe.service import Transcriber, transcripts_of

pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                reason="espeak-ng and sox make the test's speech")
SAID = "My son is having trouble breathing."
WAIT = 240  # seconds: a loaded machine; the worker loads its model first


@pytest.fixture
async def db(tmp_path: Path):
    database = Database("sqlite+aiosqlite:///" + str(tmp_path / "ivr.sqlite3"))
    await database.create()
    yield database
    await database.close()


def _telephone_wav(text: str, dest: Path, voice: str = "en-us") -> Path:
    """What Asterisk records: 8 kHz mono 16-bit WAV."""
    wide = dest.with_suffix(".wide.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(wide), "--stdin"], input=text.encode(),
                   check=True, capture_output=True)
    subprocess.run(["sox", str(wide), "-r", "8000", "-c", "1", "-b", "16", str(dest)],
                   check=True, capture_output=True)
    return dest


async def _recorded(db: Database, tmp_path: Path, text: str, voice: str = "en-us"
                    ) -> tuple[str, Path]:
    call_id = await calls.start_call(db, uniqueid=f"u-{tmp_path.name}", node="t", dialled="",
                                     forwarded_from="", caller="", started_at=calls.now())
    wav = _telephone_wav(text, tmp_path / "spool.wav", voice)
    sealed = recordings.sealed_path(tmp_path / "recordings" / call_id / "reason.wav")
    sealed.parent.mkdir(parents=True)
    recordings.take(keys.current(), wav, sealed)
    return call_id, sealed


async def _transcribe(db, tmp_path, settings: Settings, text: str, language: str,
                      voice: str = "en-us"):
    call_id, sealed = await _recorded(db, tmp_path, text, voice)
    service = Transcriber(settings, db)
    service.start()
    try:
        service.submit(call_id, "reason", sealed, language, flags_for(language))
        result = await service.wait(call_id, "reason", WAIT)
    finally:
        await service.stop()
    assert result is not None
    [row] = await transcripts_of(db, call_id)
    return result, row


async def test_whisper_transcribes_a_sealed_recording_and_finds_the_red_flag(db, tmp_path):
    result, row = await _transcribe(db, tmp_path, Settings(data_dir=tmp_path), SAID, "en-US")
    assert (row.status, row.engine, row.language) == ("done", "whisper", "en-US")
    assert "breathing" in row.text.lower(), row.text
    assert "tiny.en" in row.engine_version and "faster-whisper" in row.engine_version
    assert 0 < row.confidence <= 1 and row.audio_seconds > 2
    assert row.cpu_seconds > 0 and row.wall_seconds >= 0
    assert result.flag is not None and result.flag.topic == "breathing"
    assert row.red_flag_topic == "breathing"
    # Sealed at rest: the words are nowhere in the database file (the topic "breathing"
    # is, as a disposition would be: it names a category, not what was said).
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("ivr.sqlite3*"))
    assert b"trouble" not in raw and b"having" not in raw and b"trouble breathing" not in raw
    call = await calls.show_call(db, row.call_id)
    assert call["red_flag"] == "breathing"
    assert [e["kind"] for e in call["timeline"]] == ["call.started", "transcript.reason"]
    assert "breathing" not in str(call["timeline"]).replace("'red_flag': 'breathing'", "")


async def test_pocketsphinx_is_selectable(db, tmp_path):
    settings = Settings(data_dir=tmp_path, transcribe_engine="pocketsphinx")
    _result, row = await _transcribe(db, tmp_path, settings, SAID, "en-US")
    assert (row.status, row.engine) == ("done", "pocketsphinx")
    assert row.engine_version.startswith("pocketsphinx 5.") and row.text


async def test_spanish_without_a_model_is_skipped_and_says_so(db, tmp_path):
    result, row = await _transcribe(db, tmp_path, Settings(data_dir=tmp_path),
                                    "Mi hijo no puede respirar.", "es-US", voice="es-419")
    assert result.status == row.status == "skipped" and result.flag is None
    assert row.note == "no whisper model for es-US is installed" and row.text == ""


async def test_a_missing_model_folder_is_named_in_the_note(db, tmp_path):
    missing = tmp_path / "no-such-model"
    settings = Settings(data_dir=tmp_path, transcribe_model_path=missing)
    _result, row = await _transcribe(db, tmp_path, settings, SAID, "en-US")
    assert row.status == "skipped"
    assert row.note.startswith(f"IVR_TRANSCRIBE_MODEL_PATH='{missing}'"), row.note
    assert "missing" in row.note


async def test_transcription_off_stores_a_skip(db, tmp_path):
    settings = Settings(data_dir=tmp_path, transcribe_engine="off")
    result, row = await _transcribe(db, tmp_path, settings, SAID, "en-US")
    assert (result.status, row.note) == ("skipped", "transcription is off")


def _parent(tmp_path: Path, script: str) -> subprocess.Popen[str]:
    """`script` run as a controller stand-in (a process that owns a worker pool)."""
    import sys

    path = tmp_path / "parent.py"
    path.write_text(script)
    return subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])


def test_workers_end_when_the_controller_is_killed(tmp_path):
    """A controller killed outright cannot shut its pool down: the workers notice."""
    import signal
    import time

    import psutil

    parent = _parent(
        tmp_path,
        "import multiprocessing, os, sys, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from ivr.transcribe import worker\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'),\n"
        "                               initializer=worker.watch_parent,\n"
        "                               initargs=(os.getpid(),))\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    time.sleep(600)\n")
    try:
        child = int(parent.stdout.readline())
        assert psutil.pid_exists(child)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        parent.stdout.close()
    deadline = time.monotonic() + 60
    while psutil.pid_exists(child) and time.monotonic() < deadline:
        try:
            if psutil.Process(child).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    gone = not psutil.pid_exists(child) or psutil.Process(child).status() == \
        psutil.STATUS_ZOMBIE
    assert gone, "the worker outlived its controller"


def test_a_stopping_controller_does_not_wait_for_a_busy_worker(tmp_path):
    """A worker in the middle of a job (a model's load takes minutes at its niceness on
    a busy machine) is ended at stop, not joined at exit: the process is gone."""
    parent = _parent(
        tmp_path,
        "import multiprocessing, os, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from ivr.transcribe.service import _end_workers\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'))\n"
        "    pool.submit(os.getpid).result()  # the worker is up\n"
        "    busy = pool.submit(time.sleep, 600)\n"
        "    while not busy.running():\n"
        "        time.sleep(0.05)\n"
        "    _end_workers(pool)\n"
        "    print('stopped', flush=True)\n")
    try:
        # 600 s without the fix (the exit joins the sleeping worker); a bound, not a timing.
        parent.wait(120)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        out = parent.stdout.read()
        parent.stdout.close()
    assert "stopped" in out and parent.returncode == 0
