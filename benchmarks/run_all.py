"""Run every benchmark in turn (``make bench``); each prints its own table with machine and commit.

    python benchmarks/run_all.py [--with-load]

Run on an otherwise idle machine: other busy processes make PyTorch's thread pool
oversubscribe and every CPU timing many times slower. The load test (several minutes,
ten headless browsers) runs only with ``--with-load``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["extraction.py", "search_vs_reference.py", "app_speed.py", "cpu_latency_table.py"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--with-load", action="store_true", help="also run load_test.py (several minutes, ten headless browsers)")
    scripts = SCRIPTS + (["load_test.py"] if ap.parse_args().with_load else [])
    failed = 0
    for name in scripts:
        print(f"\n===== {name}", flush=True)
        failed += subprocess.run([sys.executable, str(HERE / name)], cwd=HERE.parent).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
