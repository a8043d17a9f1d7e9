"""The suite's own scheduling table names files that exist (a renamed file would quietly
start late again)."""

from __future__ import annotations

from pathlib import Path

from support.order import SECONDS

REPO = Path(__file__).resolve().parents[2]


def test_every_measured_file_exists():
    assert [p for p in SECONDS if not (REPO / p).is_file()] == []


def test_make_test_keeps_the_collection_order():
    """Without --no-loadscope-reorder xdist hands out the files with the most tests
    first, and the long few-test files start last (the run 2 minutes longer)."""
    rule = next(line for line in (REPO / "Makefile").read_text().splitlines()
                if "pytest" in line and "--dist loadfile" in line)
    assert "--no-loadscope-reorder" in rule
