"""``python -m digits_trainer`` is ``digits-train``."""

import sys

from .cli import main

sys.exit(main())
