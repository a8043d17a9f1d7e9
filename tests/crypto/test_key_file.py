"""ivr.secure.keys: the key file made 0600 outside the data folder, refused when unsafe."""

from __future__ import annotations

import json
import os
import stat

import pytest
from crypto_helpers import settings_in

from ivr import config
from ivr.secure import keys


def test_init_makes_one_256_bit_key_0600_in_a_0700_folder_and_never_overwrites(tmp_path):
    settings = settings_in(tmp_path)
    made = keys.init(settings)
    path = settings.key_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(made.ring) == 1 and len(made.ring.material(made.ring.active)) == 32
    doc = json.loads(path.read_text())
    assert doc["format"] == keys.FORMAT and doc["active"] == made.ring.active
    before = path.read_bytes()
    with pytest.raises(keys.KeyFileError, match="never overwritten"):
        keys.init(settings)
    assert path.read_bytes() == before
    assert keys.read(path, settings.data_dir).ring.active == made.ring.active


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_key_file_others_can_read_is_refused(tmp_path, mode):
    settings = settings_in(tmp_path)
    keys.init(settings)
    os.chmod(settings.key_file, mode)
    with pytest.raises(keys.KeyFileError, match="group or others") as caught:
        keys.read(settings.key_file, settings.data_dir)
    assert "chmod 600" in str(caught.value)


def test_a_key_file_inside_the_data_folder_is_refused(tmp_path):
    with pytest.raises(config.ConfigError, match="IVR_KEY_FILE"):
        config.Settings(data_dir=tmp_path, key_file=tmp_path / "keys.json").validate()
    with pytest.raises(config.ConfigError, match="inside the data folder"):
        config.from_env({"IVR_DATA_DIR": str(tmp_path),
                         "IVR_KEY_FILE": str(tmp_path / "sub" / "keys.json")})
    with pytest.raises(keys.KeyFileError, match="inside the data folder"):
        keys.check_place(tmp_path / "data" / "keys.json", tmp_path / "data")


def test_default_place_and_the_ivr_key_file_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert config.Settings().key_file == tmp_path / "cfg" / "ivr" / "keys.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.Settings().key_file == tmp_path / "home" / ".config" / "ivr" / "keys.json"
    chosen = config.from_env({"IVR_KEY_FILE": str(tmp_path / "k.json")})
    assert chosen.key_file == tmp_path / "k.json"
    assert config.to_env(chosen)["IVR_KEY_FILE"] == str(tmp_path / "k.json")


def test_missing_or_broken_files_say_what_to_do(tmp_path):
    settings = settings_in(tmp_path)
    with pytest.raises(keys.KeyFileError, match="ivr keys init"):
        keys.read(settings.key_file, settings.data_dir)
    settings.key_file.parent.mkdir(mode=0o700)
    fd = os.open(settings.key_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b'{"format": "ivr-keyring-1", "active": "k1", "keys": {"k1": {"key": "AAAA"}}}')
    os.close(fd)
    with pytest.raises(keys.KeyFileError, match="32 bytes"):
        keys.read(settings.key_file, settings.data_dir)


def test_ivr_keys_carries_the_keyring_instead_of_a_file(tmp_path):
    settings = settings_in(tmp_path)
    made = keys.init(settings)
    text = settings.key_file.read_text()
    settings.key_file.unlink()
    env = {keys.ENV_KEYS: text}
    assert keys.from_settings(settings, env).ring.active == made.ring.active
    assert keys.ensure(settings, env) is False and not settings.key_file.exists()
    with pytest.raises(keys.KeyFileError, match=keys.ENV_KEYS):
        keys.from_settings(settings, {keys.ENV_KEYS: "not json"})


def test_ensure_makes_the_file_once_then_checks_it(tmp_path):
    settings = settings_in(tmp_path)
    assert keys.ensure(settings, env={}) is True
    first = settings.key_file.read_bytes()
    assert keys.ensure(settings, env={}) is False
    assert settings.key_file.read_bytes() == first
    os.chmod(settings.key_file, 0o644)
    with pytest.raises(keys.KeyFileError):
        keys.ensure(settings, env={})


def test_a_running_process_sees_a_changed_key_file(tmp_path, monkeypatch):
    settings = settings_in(tmp_path)
    made = keys.init(settings)
    source = keys.KeySource(settings, env={})
    assert source.keyring().active == made.ring.active
    rotated = keys.add_key(made)
    keys.write(settings.key_file, rotated)
    assert stat.S_IMODE(settings.key_file.stat().st_mode) == 0o600
    monkeypatch.setattr(keys, "RECHECK_SECONDS", 0.0)
    ring = source.keyring()
    assert ring.active == rotated.ring.active and made.ring.active in ring
    retired = keys.retire(rotated, made.ring.active)
    keys.write(settings.key_file, retired)
    assert made.ring.active not in source.keyring(fresh=True)
    assert [r["id"] for r in keys.read(settings.key_file, settings.data_dir).retired] == \
        [made.ring.active]
    assert made.ring.material(made.ring.active).hex() not in settings.key_file.read_text()


def test_a_running_process_keeps_its_keys_when_the_file_goes_bad(tmp_path, monkeypatch):
    settings = settings_in(tmp_path)
    made = keys.init(settings)
    source = keys.KeySource(settings, env={})
    assert source.keyring().active == made.ring.active
    monkeypatch.setattr(keys, "RECHECK_SECONDS", 0.0)
    os.chmod(settings.key_file, 0o644)  # someone loosened it: refused, the old ring kept
    assert source.keyring().active == made.ring.active
    settings.key_file.unlink()
    assert source.keyring(fresh=True).active == made.ring.active
    with pytest.raises(keys.KeyFileError):  # a new process does not start on it
        keys.KeySource(settings, env={}).keyring()
