"""Fetch onnxruntime-web (the in-browser runtime) into ``static/onnxruntime-web/``, pinned and verified.

    python scripts/fetch_web_runtime.py            (``make run`` and ``make test`` run it through a stamp)
    python scripts/fetch_web_runtime.py --check    only verify what is there (exit 1 if missing or different)
    python scripts/fetch_web_runtime.py --record   after changing the pinned version: fetch, then write the
                                                   files' sha256 into the manifest

The manifest (``app/ui/browser_runtime_web/onnxruntime-web.json``, committed) pins the npm tarball by URL and by
npm's ``dist.integrity`` (sha512), lists the few files the WASM backend loads and the sha256 of each, and carries
the licence. Only those files are extracted; the app serves them from its own origin
(``server.enableStaticServing``: ``static/`` is served at ``/app/static/``), so nothing is fetched at run time.
Standard library only: it runs before the app's requirements are needed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "app" / "ui" / "browser_runtime_web" / "onnxruntime-web.json"
TARGET = ROOT / "static" / "onnxruntime-web"
LICENSE_NAME = "LICENSE.txt"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npm_integrity(data: bytes) -> str:
    """npm's ``dist.integrity`` form of ``data``: ``sha512-`` and the base64 digest."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def download(url: str, *, timeout: float = 120.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def problems(manifest: dict, *, target: Path = TARGET) -> list[str]:
    """What differs between ``target`` and the manifest (empty when every file is there with its sha256)."""
    out = []
    for name, digest in manifest["files"].items():
        path = target / name
        if not path.is_file():
            out.append(f"{path.relative_to(ROOT)} is missing")
        elif digest and sha256(path.read_bytes()) != digest:
            out.append(f"{path.relative_to(ROOT)} differs from the manifest's sha256")
    return out


def fetch(manifest: dict, *, record: bool = False, target: Path = TARGET) -> dict:
    """Download the pinned tarball, verify its integrity, extract the manifest's files into ``target``
    (verifying each sha256 unless ``record``, which fills them in instead). Returns the (updated) manifest."""
    data = download(manifest["tarball"])
    if npm_integrity(data) != manifest["integrity"]:
        raise SystemExit(f"{manifest['tarball']} does not match its pinned integrity: refusing to use it")
    target.mkdir(parents=True, exist_ok=True)
    files = dict(manifest["files"])
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for name in files:
            member = tar.extractfile(f"package/dist/{name}")
            if member is None:
                raise SystemExit(f"the tarball has no package/dist/{name}")
            content = member.read()
            if record:
                files[name] = sha256(content)
            elif sha256(content) != files[name]:
                raise SystemExit(f"package/dist/{name} does not match the manifest's sha256: refusing to use it")
            tmp = target / (name + ".part")
            tmp.write_bytes(content)
            tmp.replace(target / name)
    (target / LICENSE_NAME).write_text(manifest["license_text"], "utf-8")
    return {**manifest, "files": files}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only verify the files already fetched")
    mode.add_argument("--record", action="store_true", help="fetch and write the files' sha256 into the manifest")
    args = parser.parse_args(argv)
    manifest = json.loads(MANIFEST.read_text("utf-8"))
    if args.check:
        found = problems(manifest)
        for line in found:
            print(line, file=sys.stderr)
        return 1 if found else 0
    if not args.record and not problems(manifest):
        return 0
    try:
        updated = fetch(manifest, record=args.record)
    except OSError as exc:
        print(f"cannot fetch {manifest['package']} {manifest['version']} from the npm registry: {exc}", file=sys.stderr)
        return 1
    if args.record:
        MANIFEST.write_text(json.dumps(updated, indent=2) + "\n", "utf-8")
    print(f"{manifest['package']} {manifest['version']}: {len(updated['files'])} files in {TARGET.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
