"""Fixtures for the rules tests (helpers live in rules_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from rules_helpers import EXAMPLES, NOW  # noqa: E402  (also puts the repo on sys.path)

from ivr.rules import load_rules


@pytest.fixture(scope="session")
def examples():
    res = load_rules(EXAMPLES, now=NOW)
    assert res.ok, [str(e) for e in res.errors]
    return res.rules


@pytest.fixture(scope="session")
def sunny(examples):
    return examples.practices["sunny-pediatrics"]


@pytest.fixture(scope="session")
def mesa(examples):
    return examples.practices["mesa-family"]
