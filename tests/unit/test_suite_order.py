"""The suite's own scheduling table names files that exist (a renamed file would quietly
start late again)."""

from __future__ import annotations

from pathlib import Path

from support.order import SLOW_FIRST

REPO = Path(__file__).resolve().parents[2]


def test_every_slow_first_file_exists_once():
    assert len(set(SLOW_FIRST)) == len(SLOW_FIRST)
    assert [p for p in SLOW_FIRST if not (REPO / p).is_file()] == []
