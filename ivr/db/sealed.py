"""Sealed columns: patient values encrypted in the database, plaintext to the code using them.

A column typed `SealedText` stores ivr.secure.crypto's text form. The type alone cannot bind a
value to its row (SQLAlchemy hands it the value, not the row), so ORM events do the
work: before a row is inserted or updated its changed sealed attributes are sealed with
the row's place (table, column and the row's own key, e.g. "calls.caller:<call id>"),
and when a row is loaded they are opened with that place. Code reads and writes plain
strings as before. A sealed column written outside the ORM (a Core UPDATE, or a
comparison in a WHERE clause) has no row to bind to and is refused; lookups go through
a blind index column instead (`BlindIndex`).

Empty strings stay empty: they hold nothing (an anonymous caller's number).

Legacy plaintext: rows written before these columns were sealed hold plain text. It is
read as it is until `ivr keys rotate` seals it (ivr.secure.rekey); nothing writes plaintext.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Text, TypeDecorator, event, inspect
from sqlalchemy.orm.attributes import set_committed_value

from ivr.secure import crypto, keys


class SealError(RuntimeError):
    """A sealed column was written where no row binds it (outside the ORM)."""


class Bound(str):
    """A plaintext value (equal to it as a string) that carries its sealed form."""

    sealed: str
    place: str
    key_id: str

    def __new__(cls, plaintext: str, sealed: str, place: str, key_id: str) -> Bound:
        self = super().__new__(cls, plaintext)
        self.sealed, self.place, self.key_id = sealed, place, key_id
        return self


class Envelope(str):
    """A sealed value as read from the database, not opened yet (the text of the cipher,
    never the plaintext): what a column-only SELECT of a sealed column returns."""

    def __repr__(self) -> str:
        return "Envelope(<sealed>)"

    @property
    def key_id(self) -> str:
        return crypto.text_key_id(self)


class SealedText(TypeDecorator[str]):
    """TEXT holding a sealed value; see the module's docstring for who seals and opens."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        if isinstance(value, Bound):
            return value.sealed
        if not value:  # None or '': nothing to seal
            return value
        raise SealError("a sealed column was given a plain value outside the ORM's flush "
                        "(no row to bind it to); query a blind index instead")

    def process_result_value(self, value: str | None, dialect: object) -> str | None:
        if value is None:
            return None
        if crypto.is_sealed_text(value):
            return Envelope(value)
        return value  # LEGACY plaintext, written before sealing; `ivr keys rotate` seals it


@dataclass(frozen=True)
class BlindIndex:
    """`column` holds the blind index of the sealed attribute `source` (None for ''/None)."""

    column: str
    source: str
    purpose: str  # e.g. "calls.caller"


@dataclass(frozen=True)
class SealedModel:
    model: type
    places: dict[str, Callable[[Any], str]]  # attribute -> place of a row's value
    indexes: tuple[BlindIndex, ...] = ()


REGISTRY: list[SealedModel] = []


def seal_columns(model: type, places: dict[str, Callable[[Any], str]],
                 indexes: Iterable[BlindIndex] = ()) -> None:
    """Seal these attributes of `model` on write, open them on load."""
    spec = SealedModel(model, places, tuple(indexes))
    REGISTRY.append(spec)
    event.listen(model, "before_insert", lambda _m, _c, target: _seal(spec, target, None))
    event.listen(model, "before_update", lambda _m, _c, target: _seal(
        spec, target, set(inspect(target).committed_state)))
    event.listen(model, "load", lambda target, _ctx: _open(spec, target, None))
    event.listen(model, "refresh", lambda target, _ctx, attrs: _open(spec, target, attrs))


def sealed_values(model: type, values: dict[str, Any]) -> dict[str, Any]:
    """A `model` row's column values as its ORM flush would write them: its sealed
    attributes sealed for the row's place, its blind indexes computed. For a Core write
    (the call's hot path, ivr.records.calls); `values` must hold what the places name
    (the row's key)."""
    spec = next(s for s in REGISTRY if s.model is model)
    row = SimpleNamespace(**values)
    ring = keys.current()
    out = dict(values)
    for attr, place_of in spec.places.items():
        value = values.get(attr)
        if value:  # None or '': nothing to hide, kept as it is (as _seal does)
            out[attr] = seal_value(ring, str(value), place_of(row))
    for index in spec.indexes:
        if index.source in values:
            value = values[index.source]
            out[index.column] = crypto.blind_index(ring, index.purpose, str(value)) \
                if value else None
    return out


def seal_value(ring: crypto.Keyring, plaintext: str, place: str) -> Bound:
    return Bound(plaintext, crypto.seal_text(ring, plaintext, place), place, ring.active)


def _seal(spec: SealedModel, target: Any, changed: set[str] | None) -> None:
    ring = keys.current()
    for attr, place_of in spec.places.items():
        if changed is not None and attr not in changed:
            continue
        value = target.__dict__.get(attr)
        if not value:  # None or '' (an anonymous caller): nothing to hide, kept as it is
            continue
        place = place_of(target)
        if isinstance(value, Envelope):  # a cipher text must never be sealed as a value
            raise SealError(f"{place}: an unopened sealed value cannot be written back")
        if isinstance(value, Bound) and value.place == place and value.key_id == ring.active:
            continue  # sealed for this very place and key already
        setattr(target, attr, seal_value(ring, str.__str__(value), place))
    for index in spec.indexes:
        if changed is not None and index.source not in changed:
            continue
        value = target.__dict__.get(index.source)
        setattr(target, index.column, crypto.blind_index(ring, index.purpose, str(value))
                if value else None)


def _open(spec: SealedModel, target: Any, attrs: Iterable[str] | None) -> None:
    wanted = set(spec.places) if attrs is None else set(spec.places) & set(attrs)
    for attr in wanted:
        value = target.__dict__.get(attr)
        if isinstance(value, Envelope):
            place = spec.places[attr](target)
            plain = _open_text(value, place)
            # Committed, not set: opening a value is no change to write back.
            set_committed_value(target, attr, Bound(plain, str.__str__(value), place,
                                                    value.key_id))


def _open_text(value: str, place: str) -> str:
    opened: str = keys.opening(lambda ring: crypto.open_text(ring, value, place))
    return opened


def lookup_indexes(purpose: str, value: str) -> list[str]:
    """The blind indexes to look `value` up by (every key: rotation may be under way)."""
    return keys.opening(lambda ring: crypto.blind_indexes(ring, purpose, value))
