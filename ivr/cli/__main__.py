"""`python -m ivr.cli`: the command line."""

import sys

from ivr.cli.main import main

sys.exit(main())
