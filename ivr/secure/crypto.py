"""Authenticated encryption of patient data (AES-256-GCM) and keyed blind indexes; pure.

One sealed value, as bytes:

    b"IVRE"  version (1 byte)  key-id length (1 byte)  key id (ASCII)  nonce (12 bytes)
    ciphertext  tag (16 bytes)

Everything before the ciphertext is the header. The associated data is the header plus
the value's place (e.g. "calls.caller:<call id>"), so a value opens only with its key,
unaltered, and only where it was sealed: copied into another row, column or file name,
it fails like a tampered one. Database columns hold the text form, TEXT_PREFIX followed
by the value in URL-safe base64 (ASCII, so any column type takes it).

The keys of a keyring are never used directly: HKDF-SHA256 derives one subkey for the
cipher and another for blind indexes from each, so neither use can leak into the other.
Nothing here prints, logs or puts key material or plaintext in an exception.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"IVRE"
VERSION = 1
NONCE_BYTES = 12  # 96 bits, random per value
TAG_BYTES = 16
KEY_BYTES = 32  # AES-256
TEXT_PREFIX = "ivr1:"
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
INDEX_BYTES = 16  # a blind index is 128 bits of HMAC-SHA256, as 32 hex characters
_CIPHER_INFO = b"ivr/aes-256-gcm/v1"
_INDEX_INFO = b"ivr/blind-index/v1"


class CryptoError(ValueError):
    """A value does not open (tampered, moved, wrong or unknown key) or is malformed.

    The message names the place and key id only, never the key or the plaintext."""


class UnknownKeyError(CryptoError):
    """The value was sealed with a key this keyring does not hold."""


class Keyring:
    """Key ids -> 256-bit keys, and the active id new values are sealed with."""

    __slots__ = ("_keys", "active")

    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        for key_id, key in keys.items():
            if not KEY_ID.fullmatch(key_id):
                raise CryptoError(f"key id {key_id!r}: expected 1-40 of [A-Za-z0-9_-]")
            if len(key) != KEY_BYTES:
                raise CryptoError(f"key {key_id}: expected {KEY_BYTES} bytes")
        if active not in keys:
            raise CryptoError(f"the active key {active!r} is not in the keyring")
        self._keys = dict(keys)
        self.active = active

    def __repr__(self) -> str:  # never the key material
        return f"Keyring(active={self.active!r}, ids={sorted(self._keys)!r})"

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._keys))

    def __len__(self) -> int:
        return len(self._keys)

    def material(self, key_id: str) -> bytes:
        """The raw key (for writing the key file only)."""
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKeyError(f"no key {key_id!r} in the keyring") from None

    def with_key(self, key_id: str, key: bytes, active: bool = True) -> Keyring:
        keys = {**self._keys, key_id: key}
        return Keyring(keys, key_id if active else self.active)

    def without(self, key_id: str) -> Keyring:
        if key_id == self.active:
            raise CryptoError("the active key cannot be retired")
        return Keyring({k: v for k, v in self._keys.items() if k != key_id}, self.active)


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def new_key_id(now: datetime | None = None) -> str:
    """Sortable by creation and unique: the UTC date and 6 random hex digits."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d")
    return f"k{stamp}-{secrets.token_hex(3)}"


def new_keyring(now: datetime | None = None) -> Keyring:
    key_id = new_key_id(now)
    return Keyring({key_id: new_key()}, key_id)


@lru_cache(maxsize=64)
def _subkey(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(key)


def _header(key_id: str, nonce: bytes) -> bytes:
    kid = key_id.encode("ascii")
    return MAGIC + bytes((VERSION, len(kid))) + kid + nonce


def _split(blob: bytes) -> tuple[str, bytes, bytes]:
    """(key id, header, ciphertext with tag) of a sealed value."""
    if len(blob) < 6 or not blob.startswith(MAGIC):
        raise CryptoError("not a sealed value (no header)")
    if blob[4] != VERSION:
        raise CryptoError(f"sealed value of unknown version {blob[4]}")
    end = 6 + blob[5] + NONCE_BYTES
    if len(blob) < end + TAG_BYTES:
        raise CryptoError("sealed value cut short")
    try:
        key_id = blob[6:6 + blob[5]].decode("ascii")
    except UnicodeDecodeError:
        raise CryptoError("sealed value with a malformed key id") from None
    return key_id, blob[:end], blob[end:]


def _aad(header: bytes, place: str) -> bytes:
    return header + b"\x00" + place.encode("utf-8")


def seal(ring: Keyring, plaintext: bytes, place: str) -> bytes:
    """`plaintext` sealed with the active key, bound to `place`."""
    header = _header(ring.active, os.urandom(NONCE_BYTES))
    key = _subkey(ring.material(ring.active), _CIPHER_INFO)
    return header + AESGCM(key).encrypt(header[-NONCE_BYTES:], plaintext, _aad(header, place))


def open_sealed(ring: Keyring, blob: bytes, place: str) -> bytes:
    """The plaintext of a value sealed at `place`; CryptoError if it does not open."""
    key_id, header, body = _split(blob)
    if key_id not in ring:
        raise UnknownKeyError(f"{place}: sealed with key {key_id!r}, not in the keyring")
    key = _subkey(ring.material(key_id), _CIPHER_INFO)
    try:
        return AESGCM(key).decrypt(header[-NONCE_BYTES:], body, _aad(header, place))
    except InvalidTag:
        raise CryptoError(f"{place}: the sealed value does not open (altered, moved from "
                          "another place, or sealed with another key)") from None


def key_id_of(blob: bytes) -> str:
    return _split(blob)[0]


def is_sealed(blob: bytes) -> bool:
    return blob.startswith(MAGIC)


# --- the text form (database columns) ----------------------------------------------------

def is_sealed_text(text: str) -> bool:
    return text.startswith(TEXT_PREFIX)


def _decode(text: str) -> bytes:
    if not is_sealed_text(text):
        raise CryptoError("not a sealed value (no prefix)")
    try:
        return base64.urlsafe_b64decode(text[len(TEXT_PREFIX):].encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise CryptoError("sealed value with malformed base64") from None


def seal_text(ring: Keyring, plaintext: str, place: str) -> str:
    blob = seal(ring, plaintext.encode("utf-8"), place)
    return TEXT_PREFIX + base64.urlsafe_b64encode(blob).decode("ascii")


def open_text(ring: Keyring, text: str, place: str) -> str:
    return open_sealed(ring, _decode(text), place).decode("utf-8")


def text_key_id(text: str) -> str:
    return key_id_of(_decode(text))


# --- blind indexes -----------------------------------------------------------------------

def blind_index(ring: Keyring, purpose: str, value: str, key_id: str | None = None) -> str:
    """A keyed, deterministic stand-in for `value`, for equality lookups only.

    `purpose` (e.g. "calls.caller") keeps equal values of different columns apart."""
    key = _subkey(ring.material(key_id or ring.active), _INDEX_INFO)
    mac = hmac.new(key, purpose.encode("utf-8") + b"\x00" + value.encode("utf-8"),
                   hashlib.sha256)
    return mac.hexdigest()[:2 * INDEX_BYTES]


def blind_indexes(ring: Keyring, purpose: str, value: str) -> list[str]:
    """The index of `value` under every key: rows not re-indexed yet by a rotation match."""
    return [blind_index(ring, purpose, value, key_id) for key_id in ring]
