"""ivr.secure.crypto: AES-256-GCM bound to a place, key ids in the header, blind indexes."""

from __future__ import annotations

import pytest

from ivr.secure import crypto

PLACE = "intake_fields.value:c1:dob"


def test_a_sealed_value_opens_only_at_its_place_with_its_key():
    ring = crypto.new_keyring()
    blob = crypto.seal(ring, b"1990-01-02", PLACE)
    assert blob.startswith(crypto.MAGIC) and b"1990" not in blob
    assert crypto.key_id_of(blob) == ring.active
    assert crypto.open_sealed(ring, blob, PLACE) == b"1990-01-02"
    # Random nonces: the same value sealed twice looks different.
    assert crypto.seal(ring, b"1990-01-02", PLACE) != blob


@pytest.mark.parametrize("where", ["header", "nonce", "body", "tag"])
def test_any_altered_byte_is_refused(where):
    ring = crypto.new_keyring()
    blob = bytearray(crypto.seal(ring, b"+16175550142", PLACE))
    header = 6 + len(ring.active)
    at = {"header": 4, "nonce": header + 3, "body": header + crypto.NONCE_BYTES + 2,
          "tag": len(blob) - 1}[where]
    blob[at] ^= 0x01
    with pytest.raises(crypto.CryptoError):
        crypto.open_sealed(ring, bytes(blob), PLACE)


def test_a_value_moved_to_another_record_does_not_open():
    ring = crypto.new_keyring()
    blob = crypto.seal(ring, b"1990-01-02", "intake_fields.value:call-a:dob")
    for elsewhere in ("intake_fields.value:call-b:dob", "intake_fields.value:call-a:callback",
                      "calls.caller:call-a"):
        with pytest.raises(crypto.CryptoError, match="does not open"):
            crypto.open_sealed(ring, blob, elsewhere)


def test_the_wrong_key_is_refused_and_an_unknown_key_named():
    ring = crypto.new_keyring()
    blob = crypto.seal(ring, b"secret", PLACE)
    same_id_other_key = crypto.Keyring({ring.active: crypto.new_key()}, ring.active)
    with pytest.raises(crypto.CryptoError, match="does not open"):
        crypto.open_sealed(same_id_other_key, blob, PLACE)
    other = crypto.new_keyring()
    with pytest.raises(crypto.UnknownKeyError, match=ring.active):
        crypto.open_sealed(other, blob, PLACE)


def test_rotation_seals_with_the_new_key_and_still_opens_the_old():
    old = crypto.new_keyring()
    before = crypto.seal(old, b"old value", PLACE)
    ring = old.with_key("k-new", crypto.new_key())
    after = crypto.seal(ring, b"new value", PLACE)
    assert (crypto.key_id_of(before), crypto.key_id_of(after)) == (old.active, "k-new")
    assert crypto.open_sealed(ring, before, PLACE) == b"old value"
    assert crypto.open_sealed(ring, after, PLACE) == b"new value"
    retired = ring.without(old.active)
    with pytest.raises(crypto.UnknownKeyError):
        crypto.open_sealed(retired, before, PLACE)
    with pytest.raises(crypto.CryptoError):
        ring.without("k-new")  # never the active key


def test_the_text_form_is_ascii_and_marked():
    ring = crypto.new_keyring()
    text = crypto.seal_text(ring, "+16175550142", PLACE)
    assert crypto.is_sealed_text(text) and text.isascii() and "6175550142" not in text
    assert crypto.text_key_id(text) == ring.active
    assert crypto.open_text(ring, text, PLACE) == "+16175550142"
    assert not crypto.is_sealed_text("+16175550142")  # legacy plaintext
    with pytest.raises(crypto.CryptoError):
        crypto.open_text(ring, crypto.TEXT_PREFIX + "%%%", PLACE)


def test_blind_indexes_are_keyed_per_purpose_and_per_key():
    ring = crypto.new_keyring()
    index = crypto.blind_index(ring, "calls.caller", "+16175550142")
    assert index == crypto.blind_index(ring, "calls.caller", "+16175550142")
    assert len(index) == 32 and "6175550142" not in index
    assert index != crypto.blind_index(ring, "calls.caller", "+16175550143")
    assert index != crypto.blind_index(ring, "oncall_legs.number", "+16175550142")
    assert index != crypto.blind_index(crypto.new_keyring(), "calls.caller", "+16175550142")
    both = ring.with_key("k-new", crypto.new_key())
    assert index in crypto.blind_indexes(both, "calls.caller", "+16175550142")
    assert len(crypto.blind_indexes(both, "calls.caller", "+16175550142")) == 2


def test_no_key_material_in_reprs_or_errors():
    ring = crypto.new_keyring()
    raw = ring.material(ring.active)
    shown = [repr(ring), str(ring)]
    try:
        crypto.open_sealed(ring, crypto.seal(ring, b"x", PLACE), "elsewhere")
    except crypto.CryptoError as exc:
        shown.append(str(exc))
    for text in shown:
        assert raw.hex() not in text and ring.active in shown[0]
    with pytest.raises(crypto.CryptoError, match="32 bytes"):
        crypto.Keyring({"k1": b"short"}, "k1")
    with pytest.raises(crypto.CryptoError, match="key id"):
        crypto.Keyring({"k 1": crypto.new_key()}, "k 1")
