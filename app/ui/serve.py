"""Launch the app: ``python -m app.ui.serve [streamlit options] [-- --supernet PATH]``.

Same as ``streamlit run streamlit_app.py``, except that Streamlit's legacy handling of
a ``pages/`` folder beside the entry script is switched off before the server starts:
the app declares its pages with ``st.navigation`` (titles, icons, URLs), and without
this the very first session after start-up would be routed the legacy way.
It also runs from the project root, so ``.streamlit/config.toml`` (a link to
``streamlit_config.toml``) always takes effect.

``OFA_EXPLORER_THREADS=N`` caps torch's intra-op threads (useful on a shared machine:
oversubscribed threads make PyTorch on CPU many times slower).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from app.paths import ROOT


def config_flags(path: Path = ROOT / "streamlit_config.toml") -> list[str]:
    """``streamlit_config.toml`` as command-line flags, so it applies even where the
    ``.streamlit/config.toml`` link was lost (e.g. a checkout without symlinks).
    Flags given on the command line come later and win."""
    import tomllib

    with open(path, "rb") as f:
        doc = tomllib.load(f)
    flags = []
    for section, options in doc.items():
        for key, value in options.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags.append(f"--{section}.{key}={text}")
    return flags


def _preload() -> None:
    """Import torch and the pages while the server starts (the first visitor would wait ~3 s for them)."""
    import importlib

    for name in ("torch", "app.ui.explore_page", "app.ui.classify_page"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the page import will report the same error properly
            return


def main(argv: list[str] | None = None) -> None:
    import threading

    from app.allocator import keep_freed_memory, preload_env

    preload = preload_env()
    if preload:  # start again with tcmalloc under malloc (same pid; app.allocator says why)
        os.execve(sys.executable, [sys.executable, "-m", "app.ui.serve", *(sys.argv[1:] if argv is None else argv)],
                  {**os.environ, **preload})
    keep_freed_memory()  # before any thread starts: Streamlit runs each page in its own thread
    threading.Thread(target=_preload, name="preload", daemon=True).start()
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    PagesManager.uses_pages_directory = False
    threads = os.environ.get("OFA_EXPLORER_THREADS", "").strip()
    if threads:
        import torch

        if not threads.isdigit() or int(threads) < 1:
            raise SystemExit(f"OFA_EXPLORER_THREADS must be a positive integer, got {threads!r}")
        torch.set_num_threads(int(threads))
    os.chdir(ROOT)
    args = list(sys.argv[1:] if argv is None else argv)
    sys.argv = ["streamlit", "run", str(ROOT / "streamlit_app.py"), *config_flags(), *args]
    cli.main()


@dataclass(frozen=True)
class RunningApp:
    url: str
    pid: int


class ServeError(RuntimeError):
    """A server did not start (one line for people)."""


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen | None, what: str, timeout: float) -> None:
    """Return once ``url``'s ``/_stcore/health`` says ok; :class:`ServeError` if ``proc`` (when given) exits first or
    time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise ServeError(f"{what} exited with code {proc.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise ServeError(f"{what} was not ready within {timeout:.0f} s")
        time.sleep(0.2)


def stop(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Terminate ``proc`` (kill it after ``timeout`` s)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def serving(timeout: float = 120.0, env: dict[str, str] | None = None, output=subprocess.DEVNULL) -> Iterator[RunningApp]:
    """Run the app in a subprocess on 127.0.0.1 and a free port; yields it once ``/_stcore/health`` says ok.

    For tests, benchmarks and screenshots; the server is stopped on exit."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.ui.serve", "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, stdout=output, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, "the app", timeout)
        yield RunningApp(url, proc.pid)
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
