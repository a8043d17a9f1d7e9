"""Recordings at rest: sealed as they leave the PBX's spool, opened only in memory.

A kept recording is `<name>.wav.enc`, ivr.secure.crypto's sealed form of the whole WAV file,
bound to its place: the folder it belongs in (the call id, or "fallback") and its name,
so a file copied over another call's recording does not open. The plaintext spool file
is removed as soon as the sealed copy is on disk. Readers get the WAV bytes in memory
(`read`) and write them only where a call needs them for a few seconds (the PBX's
runtime copies, deleted after the call) or where a person asked for them
(`ivr recordings export`).

Legacy: recordings kept before sealing are plain `.wav`. They are read as they are until
`ivr keys rotate` seals them (ivr.secure.rekey).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ivr.secure import crypto, files, keys

SUFFIX = ".enc"


def sealed_path(wav: Path) -> Path:
    """Where the sealed form of `wav` (a .wav path) is kept."""
    return wav.with_name(wav.name + SUFFIX)


def place(path: Path) -> str:
    """What a recording is bound to: its folder's name (a call id, or 'fallback') and its
    own name without the .enc, which stay the same wherever the data folder moves."""
    name = path.name[:-len(SUFFIX)] if path.name.endswith(SUFFIX) else path.name
    return f"recording:{path.parent.name}/{name}"


def is_sealed_file(path: Path) -> bool:
    return path.name.endswith(SUFFIX)


def seal_bytes(ring: crypto.Keyring, wav: bytes, dest: Path) -> Path:
    """Write `wav` sealed at `dest` (a .wav.enc path), atomically and 0600."""
    return files.write_private(dest, crypto.seal(ring, wav, place(dest)))


def take(ring: crypto.Keyring, spooled: Path, dest: Path) -> Path:
    """Seal the spool file `spooled` into `dest` (.wav.enc), then remove the spool file."""
    seal_bytes(ring, spooled.read_bytes(), dest)
    os.unlink(spooled)
    return dest


def read(path: Path, ring: crypto.Keyring | None = None) -> bytes:
    """The WAV bytes of a kept recording (sealed, or a legacy plain .wav)."""
    data = path.read_bytes()
    if not is_sealed_file(path):
        return data  # LEGACY plaintext recording, until `ivr keys rotate` seals it
    if ring is not None:
        return crypto.open_sealed(ring, data, place(path))
    opened: bytes = keys.opening(lambda r: crypto.open_sealed(r, data, place(path)))
    return opened


FIELDS = ("name", "reason", "fallback")  # the recordings a call can have


def path_of(call: Mapping[str, Any], field: str) -> str | None:
    """Where a call record (ivr.records.calls.show_call) keeps one of its recordings."""
    if field == "fallback":
        return call.get("fallback_recording")
    entry = (call.get("intake") or {}).get(field) or {}
    path: str | None = entry.get("recording_path")
    return path


def key_id(path: Path) -> str | None:
    """The key a sealed recording was sealed with (None for a legacy plain file)."""
    if not is_sealed_file(path):
        return None
    with path.open("rb") as handle:
        head = handle.read(6 + 255 + crypto.NONCE_BYTES + crypto.TAG_BYTES)
    return crypto.key_id_of(head)
