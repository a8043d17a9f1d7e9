"""`ivr` as the tests run it: the real command line, after the faults a test asked for."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.cli.main import main  # noqa: E402
from support.faults import install_from_env  # noqa: E402

if __name__ == "__main__":
    install_from_env()
    sys.exit(main())
