"""The password hashing the service ships with (the tests' own process uses a cheap
profile, tests/conftest.py: this file checks the real one)."""

from __future__ import annotations

from argon2 import PasswordHasher, Type, extract_parameters, profiles

from ivr.accounts import passwords


def test_the_shipped_hasher_is_argon2id_with_the_librarys_profile():
    made = passwords.DEFAULT_HASHER.hash("correct horse battery")
    params = extract_parameters(made)
    assert params.type is Type.ID
    assert params == profiles.get_default_parameters()
    assert passwords.DEFAULT_HASHER.verify(made, "correct horse battery")


def test_a_hash_weaker_than_the_shipped_profile_is_made_again_at_login():
    weak = PasswordHasher.from_parameters(profiles.CHEAPEST).hash("correct horse battery")
    assert passwords.DEFAULT_HASHER.check_needs_rehash(weak)


def test_verify_refuses_a_wrong_an_overlong_and_a_missing_password():
    stored = passwords.hash_password("correct horse battery")
    assert passwords.verify(stored, "correct horse battery")
    assert not passwords.verify(stored, "correct horse batterx")
    assert not passwords.verify(stored, "x" * (passwords.MAX_LENGTH + 1))
    assert not passwords.verify(None, "correct horse battery")
    assert not passwords.verify("not a hash", "correct horse battery")
