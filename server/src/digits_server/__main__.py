"""`python -m digits_server` runs the server."""

import sys

from .cli import main

sys.exit(main())
