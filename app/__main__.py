"""``python -m app <command>``: see ``python -m app --help``."""

import sys

from app.cli import main

sys.exit(main())
