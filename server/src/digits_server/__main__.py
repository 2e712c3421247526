"""`python -m digits_server` runs the server."""

import sys

from digits_server.cli import main

sys.exit(main())
