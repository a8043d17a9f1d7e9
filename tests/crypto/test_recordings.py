"""Recordings sealed as they leave the spool (intake and fallback), opened only in memory
or into the PBX's runtime copy, and bound to their call."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from crypto_helpers import own_keyring, settings_in, tone_wav

from ivr.flows.intake import _voice_check
from ivr.flows.screen import SCREEN_SPOOL, playable_copy
from ivr.records import recordings
from ivr.records.reconcile import _take_recording
from ivr.secure import crypto, keys


def _spool(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "spool" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_voiced_intake_recording_is_sealed_and_the_spool_copy_removed(tmp_path):
    settings = settings_in(tmp_path)
    with own_keyring(settings):
        wav = tone_wav()
        spooled = _spool(tmp_path, "c1-name-1.wav", wav)
        dest = recordings.sealed_path(settings.recordings_dir / "c1" / "name.wav")
        stats = _voice_check(spooled)
        assert stats is not None and stats.has_voice
        recordings.take(keys.current(), spooled, dest)  # as the flow's seal does
        assert not spooled.exists()
        data = dest.read_bytes()
        assert data.startswith(crypto.MAGIC) and not data.startswith(b"RIFF")
        assert stat.S_IMODE(dest.stat().st_mode) == 0o600
        assert stat.S_IMODE(dest.parent.stat().st_mode) == 0o700
        assert recordings.read(dest) == wav
        # Silence is not kept at all.
        silent = _spool(tmp_path, "c1-reason-1.wav", tone_wav(0.0) + bytes(16000))
        quiet = _voice_check(silent)
        assert quiet is not None and not quiet.has_voice
        assert not silent.exists()


def test_a_recording_copied_over_another_calls_does_not_open(tmp_path):
    settings = settings_in(tmp_path)
    with own_keyring(settings):
        mine = recordings.seal_bytes(keys.current(), tone_wav(),
                                     settings.recordings_dir / "call-a" / "reason.wav.enc")
        theirs = settings.recordings_dir / "call-b" / "reason.wav.enc"
        theirs.parent.mkdir(mode=0o700)
        shutil.copyfile(mine, theirs)
        with pytest.raises(crypto.CryptoError, match="recording:call-b/reason.wav"):
            recordings.read(theirs)
        renamed = mine.with_name("name.wav.enc")
        shutil.copyfile(mine, renamed)
        with pytest.raises(crypto.CryptoError):
            recordings.read(renamed)


def test_fallback_messages_are_sealed_when_taken(tmp_path):
    settings = settings_in(tmp_path)
    with own_keyring(settings):
        wav = tone_wav()
        spooled = _spool(tmp_path, "1700000000.1.wav", wav)
        dest = settings.recordings_dir / "fallback" / "1700000000.1.wav"
        taken = _take_recording(spooled, dest)
        assert taken == recordings.sealed_path(dest) and not spooled.exists()
        assert recordings.read(taken) == wav and not dest.exists()
        assert _take_recording(spooled, dest) == taken  # a stamp applied twice
        # A WAV header and nothing else: no message, nothing kept.
        empty = _spool(tmp_path, "1700000000.2.wav", wav[:44])
        assert _take_recording(empty, dest.with_name("1700000000.2.wav")) is None
        assert not empty.exists()
        assert _take_recording(tmp_path / "spool" / "none.wav", dest) == taken


def test_clinicians_hear_a_plaintext_copy_made_only_inside_the_pbx(tmp_path):
    settings = settings_in(tmp_path)
    handed: list[Path] = []
    host = tmp_path / "pbx"

    class Pbx:
        host_dir = host

        def inner_path(self, path: Path) -> str:
            return "/inner/" + str(path.relative_to(host))

        def give_to_pbx(self, path: Path) -> None:
            handed.append(path)

    services = SimpleNamespace(pbx=Pbx(), settings=settings)
    with own_keyring(settings):
        wav = tone_wav()
        sealed = recordings.seal_bytes(keys.current(), wav,
                                       settings.recordings_dir / "c1" / "name.wav.enc")
        copies: list[Path] = []
        played = playable_copy(services, str(sealed), "leg1-name", copies)
        copy = host / "sounds" / SCREEN_SPOOL / "leg1-name.wav"
        assert played == f"/inner/sounds/{SCREEN_SPOOL}/leg1-name" and copies == [copy]
        assert copy.read_bytes() == wav and stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
        assert handed == [copy.parent, copy]
        # A recording that does not open is left out of the message, not played as noise.
        shutil.copyfile(sealed, sealed.with_name("reason.wav.enc"))
        assert playable_copy(services, str(sealed.with_name("reason.wav.enc")), "leg1-reason",
                             copies) is None
        # A legacy plain recording (kept before sealing) still plays.
        legacy = settings.recordings_dir / "c0" / "name.wav"
        legacy.parent.mkdir(mode=0o700)
        legacy.write_bytes(wav)
        assert playable_copy(services, str(legacy), "leg0-name", copies) is not None
