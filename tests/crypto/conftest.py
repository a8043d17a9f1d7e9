"""Sealing tests: the cipher, the key file, sealed columns, recordings, rotation (no PBX)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the project may not be pip-installed in the venv
    sys.path.insert(0, str(REPO))
