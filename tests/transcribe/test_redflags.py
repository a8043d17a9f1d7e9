"""The red-flag matcher (pure): words, not letters; accents, case, apostrophes and plurals
aside; a practice's phrases first; hostile text is only text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.texts import en, es
from ivr.transcribe.redflags import PRACTICE_TOPIC, flags_for, match, words

EN = flags_for("en-US")
ES = flags_for("es-US")


@pytest.mark.parametrize(("said", "topic"), [
    ("My baby is not breathing right.", "breathing"),
    ("He CAN'T BREATHE!", "breathing"),
    ("she's had two seizures tonight", "seizure"),
    ("chest pain since dinner", "chest_pain"),
    ("I think he took too many pills", "overdose"),
    ("my newborn has a fever", "infant_fever"),
])
def test_english_defaults(said, topic):
    flag = match(said, EN)
    assert flag is not None and flag.topic == topic


@pytest.mark.parametrize(("said", "topic"), [
    ("Mi bebé no puede respirar bien", "breathing"),
    ("tiene DOLOR EN EL PECHO", "chest_pain"),
    ("tuvo una convulsión", "seizure"),
    ("mi bebe tiene fiebre", "infant_fever"),
])
def test_spanish_defaults_ignore_accents(said, topic):
    flag = match(said, ES)
    assert flag is not None and flag.topic == topic


@pytest.mark.parametrize("said", [
    "My daughter has a fever of one hundred and three.",
    "I need a refill of her inhaler",
    "she was stroking the cat",  # a word that only begins like a phrase
    "I'm calling about my appointment",
    "",
])
def test_routine_reasons_do_not_match(said):
    assert match(said, EN) is None


def test_practice_phrases_come_first_and_defaults_can_be_off():
    flags = flags_for("en-US", ["Blue Lips"], use_defaults=False)
    assert [f.topic for f in flags] == [PRACTICE_TOPIC]
    assert match("her lips are blue", flags) is None
    assert match("she has blue lips", flags).topic == PRACTICE_TOPIC
    assert match("chest pain", flags) is None
    both = flags_for("en-US", ["chest pain"])
    assert match("chest pain", both).topic == PRACTICE_TOPIC


def test_every_topic_has_a_label_in_both_languages():
    assert set(en.RED_FLAGS) == set(es.RED_FLAGS)
    assert set(en.RED_FLAGS) | {PRACTICE_TOPIC} == set(en.RED_FLAG_LABELS)


@given(st.text(max_size=300))
def test_any_text_is_matched_without_error(text):
    match(text, EN)
    assert all(w.isalnum() and w.isascii() for w in words(text))
