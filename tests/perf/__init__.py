"""The benchmarks: scripts that print numbers beside a baseline measured in the same run.

Run them as modules from the repository root (`make bench`, or
`.venv/bin/python -m tests.perf.bench_capacity --quick`); they share `benchlib`. The
tests' support code imports itself as `harness`, `support.*` and `oncall_helpers` (the
way pytest's conftest sees tests/ and tests/e2e), so this package puts those two folders
on the path once, here, and no script does.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for _folder in (_TESTS / "e2e", _TESTS):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
