"""Passwords (argon2id, argon2-cffi's defaults) and the optional TOTP second factor (pyotp)."""

from __future__ import annotations

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MAX_LENGTH = 200  # bounds the hashing work one request can ask for
DEFAULT_HASHER = PasswordHasher()  # argon2id, memory-hard; the library's profile
_HASHER = DEFAULT_HASHER
# Checked against when the user does not exist, so that a miss takes as long as a hit.
_DUMMY = _HASHER.hash("not a password of anyone's")


def use_hasher(hasher: PasswordHasher) -> None:
    """Hash and check with `hasher` from now on: the tests' seam (argon2's cheapest
    profile; the real one spends ~0.15 s of CPU on each password, by design)."""
    global _HASHER, _DUMMY
    _HASHER, _DUMMY = hasher, hasher.hash("not a password of anyone's")


class WeakPassword(ValueError):
    """A new password is refused; the message says why (never the password)."""


def check_new(password: str, username: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password has at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")
    if username.lower() in password.lower():
        raise WeakPassword("a password must not contain the user name")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """True when `password` matches; always does the work, user or not."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, username: str, issuer: str = "ivr portal") -> str:
    """The otpauth:// address an authenticator app takes (as a QR code or typed)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def verify_totp(secret: str, code: str) -> bool:
    """A 6-digit code of now, or of the 30 s step either side (clocks drift)."""
    code = code.strip().replace(" ", "")
    return code.isdigit() and len(code) == 6 and pyotp.TOTP(secret).verify(code, valid_window=1)
