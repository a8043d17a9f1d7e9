"""Every language has the same texts: the same names, and in each table the same keys and
placeholders, so a Spanish caller never falls back to an English sentence."""

from __future__ import annotations

import string
from types import ModuleType

import pytest

from ivr import texts
from ivr.texts import en, es


def _public(module: ModuleType) -> dict[str, object]:
    return {k: v for k, v in vars(module).items() if k.isupper() and not k.startswith("_")}


def _slots(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_spanish_has_exactly_the_english_names_and_keys():
    ours, theirs = _public(en), _public(es)
    assert set(ours) == set(theirs)
    for name, value in ours.items():
        other = theirs[name]
        assert type(other) is type(value), name
        if isinstance(value, dict):
            assert list(value) == list(other), name  # same keys, same order
            for key, text in value.items():
                if isinstance(text, str):
                    assert _slots(text) == _slots(other[key]), f"{name}[{key}]"


@pytest.mark.parametrize("module", list(texts.LANGUAGES.values()))
def test_every_language_names_a_voice_espeak_has(module):
    import shutil
    import subprocess

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True,
                         check=True).stdout
    assert f" {module.VOICE} " in out


def test_language_tags():
    assert texts.for_language("es-US") is es and texts.for_language(None) is en
    assert texts.for_language("xx-YY") is en  # never fails a call
    assert all(texts.primary(tag) in texts.LANGUAGES for tag in texts.LANGUAGE_TAGS)
