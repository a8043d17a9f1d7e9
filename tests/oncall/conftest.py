"""Fixtures for the on-call unit tests (no PBX): a small practice, a fake AMI, a database."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rules"))
from rules_helpers import base, practice_from  # noqa: E402  (also puts the repo on sys.path)


@pytest.fixture
def practice(tmp_path):
    data = base()
    data["overflow"] = {"mode": "intake_then_bridge", "bridge_to": ["+16175550399"]}
    return practice_from(tmp_path, data)
