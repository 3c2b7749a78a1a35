"""Check that pyproject.toml's dependencies agree with the requirement files pip installs from.

    python scripts/check_requirements.py        (``make test`` runs it first)

* ``dependencies`` are read from requirements.txt (setuptools' ``file =`` directive): that file must hold
  one requirement per line and full-line comments only (no trailing comments, no ``-r``), or the build breaks;
* the ``train`` extra must list what requirements-train.txt adds to requirements.txt;
* the ``dev`` extra must list ``ofa-explorer[train]`` and what requirements-dev.txt adds to requirements-train.txt.

Exit status 1 and one line per difference when they do not agree. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # runs before anything is installed: no `import app` here


def own_lines(path: Path) -> tuple[list[str], list[str]]:
    """(requirements, files it includes with ``-r``) of one requirement file, comments stripped."""
    reqs, includes = [], []
    for line in path.read_text("utf-8").splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r"):
            includes.append(line[2:].strip())
        else:
            reqs.append(line)
    return reqs, includes


def canonical(req: str) -> str:
    name, rest = re.match(r"([A-Za-z0-9._-]+)(.*)", req.strip()).groups()
    return re.sub(r"[-_.]+", "-", name).lower() + rest.replace(" ", "")


def problems(root: Path = ROOT) -> list[str]:
    doc = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    out = []
    dynamic = doc["tool"]["setuptools"]["dynamic"]["dependencies"]["file"]
    if dynamic != ["requirements.txt"]:
        out.append(f"pyproject.toml: dependencies should be read from requirements.txt, not {dynamic}")
    for line in (root / "requirements.txt").read_text("utf-8").splitlines():
        text = line.strip()
        if text and not text.startswith("#") and ("#" in text or text.startswith("-")):
            out.append(f"requirements.txt: {text!r}: setuptools reads this file; one requirement per line, full-line comments only")
    extras = doc["project"]["optional-dependencies"]
    expected = {
        "train": ("requirements-train.txt", "requirements.txt", []),
        "dev": ("requirements-dev.txt", "requirements-train.txt", ["ofa-explorer[train]"]),
    }
    for extra, (file, base, extra_self) in expected.items():
        reqs, includes = own_lines(root / file)
        if includes != [base]:
            out.append(f"{file}: should include exactly -r {base} (has {includes})")
        want = sorted(canonical(r) for r in reqs + extra_self)
        have = sorted(canonical(r) for r in extras.get(extra, []))
        for r in sorted(set(want) - set(have)):
            out.append(f"pyproject.toml [{extra}] lacks {r} ({file} has it)")
        for r in sorted(set(have) - set(want)):
            out.append(f"pyproject.toml [{extra}] has {r}, {file} does not")
    return out


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    found = problems()
    for p in found:
        print(p, file=sys.stderr)
    if not found:
        print("pyproject.toml agrees with requirements*.txt")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
