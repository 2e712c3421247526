"""`python -m digits.cli` runs the command line."""

import sys

from digits.cli.main import main

sys.exit(main())
