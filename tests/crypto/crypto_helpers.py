"""A keyring of a test's own (in a key file outside its data folder), and a WAV to seal."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ivr import config
from ivr.secure import keys

REPO = Path(__file__).resolve().parents[2]
DOB = "1990-01-02"
CALLER = "+16175550142"


def settings_in(tmp_path: Path, databases: Any = None) -> config.Settings:
    """A test's settings; with `databases` (the fixture) a new database of its kind."""
    data = tmp_path / "data"
    url = databases.new(data / "ivr.sqlite3") if databases is not None else ""
    return config.Settings(data_dir=data, key_file=tmp_path / "conf" / "keys.json",
                           instance="crypto-test", db_url=url).validate()


@contextmanager
def using_key_file(settings: config.Settings) -> Iterator[None]:
    """This process uses the key file of `settings` until the block ends."""
    previous = keys.use(keys.KeySource(settings, env={}))
    try:
        yield
    finally:
        keys.use(previous)


@contextmanager
def own_keyring(settings: config.Settings) -> Iterator[keys.KeyFile]:
    """A new key file for `settings`, used by this process until the block ends."""
    made = keys.init(settings)
    with using_key_file(settings):
        yield made


def key_strings(key_file: keys.KeyFile) -> list[str]:
    """Every way a key of the ring could be written out: hex, base64, URL-safe base64."""
    out = []
    for key_id in key_file.ring:
        raw = key_file.ring.material(key_id)
        out += [raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(),
                base64.b64encode(raw).decode().rstrip("=")]
    return out


def tone_wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A 16-bit mono WAV holding a loud tone (a 'voice' for ivr.flows.audio)."""
    frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / rate)))
                      for i in range(int(seconds * rate)))
    header = b"RIFF" + struct.pack("<I", 36 + len(frames)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(frames))
    return header + frames
