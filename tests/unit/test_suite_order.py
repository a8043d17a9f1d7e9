"""The suite's own scheduling table names files that exist (a renamed file would quietly
start late again)."""

from __future__ import annotations

from pathlib import Path

from support.order import LEAD, SECONDS, rank

REPO = Path(__file__).resolve().parents[2]


def test_every_measured_file_exists():
    assert [p for p in SECONDS if not (REPO / p).is_file()] == []


def test_make_test_keeps_the_collection_order():
    """Without --no-loadscope-reorder xdist hands out the files with the most tests
    first, and the long few-test files start last (the run 2 minutes longer)."""
    rule = next(line for line in (REPO / "Makefile").read_text().splitlines()
                if "pytest" in line and "--dist loadfile" in line)
    assert "--no-loadscope-reorder" in rule


def test_only_the_longest_files_start_together():
    """The LEAD longest first, then a quick file before any other long one."""
    files = sorted([*SECONDS, "tests/unit/a_quick_one.py"], key=lambda p: rank(p, 3))
    longest = sorted(SECONDS, key=SECONDS.__getitem__, reverse=True)
    assert files[:LEAD] == longest[:LEAD]
    assert files[LEAD] == "tests/unit/a_quick_one.py"
    assert files[LEAD + 1:] == longest[LEAD:]
