"""``python -m app <command>``: see ``python -m app --help``."""

import sys

from app.allocator import keep_freed_memory

keep_freed_memory()

from app.cli import main  # noqa: E402

sys.exit(main())
