"""Fixtures for the runtime tests: a private copy of the example rules, a CLI environment."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from runtime_helpers import EXAMPLES, INSTANCE  # noqa: E402


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """A copy of routing_rules/ the test may edit."""
    target = tmp_path / "rules"
    shutil.copytree(EXAMPLES, target)
    return target


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rules_dir: Path) -> Path:
    """IVR_* variables for `ivr.cli.main.main`: own data dir, instance and rules; the data dir."""
    data = tmp_path / "data"
    monkeypatch.setenv("IVR_DATA_DIR", str(data))
    monkeypatch.setenv("IVR_INSTANCE", INSTANCE)
    monkeypatch.setenv("IVR_RULES_PATH", str(rules_dir))
    monkeypatch.delenv("IVR_DB_URL", raising=False)
    return data
