"""How the process keeps and returns freed memory (the C allocator under torch's tensors).

BN re-estimation of the largest subnet (30 images at r=224) allocates several tensors of 50-220 MB per forward pass.
glibc's defaults serve each of them with a fresh ``mmap`` and return it on ``free``: every pass pays page faults on
first touch (1.27 s per re-estimation instead of 0.60 s, this machine). Keeping freed memory for reuse is what makes
torch on CPU fast here; keeping *all* of it makes a server's RSS climb with fragmentation (one process running 40
random configs: 1.2 → 5.1 GB). So a process does three things:

1. **Keep freed memory** (:func:`keep_freed_memory`). Under glibc: large blocks from the heap (no ``mmap``), up to
   ``KEPT_FREE_BYTES`` free at the top kept, every thread on the main heap. Under **tcmalloc** (Debian's
   ``libtcmalloc-minimal4``, preloaded into the app's server by :mod:`app.ui.serve` when installed:
   :func:`preload_env`) nothing to set: it keeps freed spans and gives each thread its own cache.
2. **Bound what is kept while busy**: after each piece of heavy work (:func:`releasing_freed_memory`), if more than
   ``KEPT_FREE_BYTES`` (an eighth of the machine's memory, 512 MiB to 3 GiB) freed bytes are held, return them to the
   system (:func:`release_freed_memory`).
3. **Return it when quiet**: ``QUIET_S`` seconds after the last heavy work, return everything freed, so a server whose
   room has gone quiet comes back down to what it actually holds (models, caches, sessions).

In a room of 50 sessions on 2 replicas (docs/load.md#memory) this held RSS with the room still to +3.1% of after the
warm-up with uploads p95 3.1 s; a 1 GiB budget returned memory so often that uploads took p95 4.5–8.5 s, and keeping
everything (glibc, as before) left the replicas 62–86% above it after a run.

Elsewhere than Linux (macOS, Windows) nothing is set or released. ``OFA_EXPLORER_KEEP_FREED=0`` leaves glibc's
defaults (no preloading, no settings; releasing still happens).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading
import time
from typing import Iterator

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


def _kept_free_budget() -> int:
    """An eighth of the machine's memory, between 512 MiB and 3 GiB (24 GiB here: 2.9 GiB)."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 1 << 30
    return max(512 << 20, min(3 << 30, ram // 8))


KEPT_FREE_BYTES = _kept_free_budget()  # freed bytes a busy process may keep for reuse (two replicas: a quarter of RAM)
QUIET_S = 3.0  # seconds without heavy work before everything freed is returned
ENV_KEEP = "OFA_EXPLORER_KEEP_FREED"
TCMALLOC = "tcmalloc_minimal"  # Debian: libtcmalloc-minimal4

_applied: bool | None = None


def _keeping() -> bool:
    return sys.platform.startswith("linux") and os.environ.get(ENV_KEEP, "1") != "0"


def _process() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)
    except OSError:  # pragma: no cover - not a dynamically linked process
        return None


def allocator() -> str:
    """``"tcmalloc"``, ``"glibc"`` or ``"other"``: which C allocator serves this process's ``malloc``."""
    proc = _process()
    if proc is None:
        return "other"
    if hasattr(proc, "MallocExtension_ReleaseFreeMemory"):
        return "tcmalloc"
    if sys.platform.startswith("linux") and hasattr(proc, "malloc_trim") and hasattr(proc, "mallinfo2"):
        return "glibc"
    return "other"


def tcmalloc_library() -> str | None:
    """The path of tcmalloc's shared library if installed (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library(TCMALLOC)
    if not name:
        return None
    if os.path.isabs(name):
        return name
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    return None


def preload_env() -> dict[str, str]:
    """Environment that makes a new process use tcmalloc (``LD_PRELOAD``), or {} if it is not installed, already
    preloaded, or ``OFA_EXPLORER_KEEP_FREED=0``."""
    lib = tcmalloc_library() if _keeping() else None
    if lib is None or lib in os.environ.get("LD_PRELOAD", ""):
        return {}
    return {"LD_PRELOAD": " ".join(filter(None, (lib, os.environ.get("LD_PRELOAD", ""))))}


def keep_freed_memory() -> bool:
    """Keep freed memory for reuse (once per process, before it starts threads); True where it applies."""
    global _applied
    if _applied is None:
        kind = allocator() if _keeping() else "other"
        _applied = kind == "tcmalloc" or (kind == "glibc" and _mallopt())
    return _applied


def _mallopt() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in
               ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, min(KEPT_FREE_BYTES, 2**31 - 1))))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def freed_bytes_kept() -> int | None:
    """Bytes freed by the program but still held by the allocator (None where it cannot say)."""
    proc, kind = _process(), allocator()
    if kind == "tcmalloc":
        value = ctypes.c_size_t(0)
        get = proc.MallocExtension_GetNumericProperty
        get.argtypes, get.restype = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t)], ctypes.c_int
        return int(value.value) if get(b"tcmalloc.pageheap_free_bytes", ctypes.byref(value)) else None
    if kind == "glibc":
        proc.mallinfo2.restype = _MallInfo2
        return int(proc.mallinfo2().fordblks)
    return None


def release_freed_memory() -> bool:
    """Return what the allocator holds freed to the system; True if this allocator can."""
    proc, kind = _process(), allocator()
    if kind == "tcmalloc":
        proc.MallocExtension_ReleaseFreeMemory()
        return True
    if kind == "glibc":
        proc.malloc_trim.argtypes, proc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        proc.malloc_trim(0)
        return True
    return False


class _Releaser:
    """Counts heavy work in progress; releases when more than ``KEPT_FREE_BYTES`` are kept after a piece of it, and
    everything once ``QUIET_S`` seconds have passed without any (one daemon thread, started on first use)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._running = 0
        self._last_end: float | None = None  # end of the last heavy work not yet followed by a quiet release
        self._thread: threading.Thread | None = None
        self.releases = {"over_budget": 0, "quiet": 0}

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        with self._cv:
            self._running += 1
        try:
            yield
        finally:
            with self._cv:
                self._running -= 1
                self._last_end = time.monotonic()
                if self._thread is None:
                    self._thread = threading.Thread(target=self._quiet_loop, name="release-when-quiet", daemon=True)
                    self._thread.start()
                self._cv.notify_all()
            kept = freed_bytes_kept()
            if kept is not None and kept > KEPT_FREE_BYTES and release_freed_memory():
                self.releases["over_budget"] += 1

    def _quiet_loop(self) -> None:
        while True:
            with self._cv:
                while True:
                    if self._last_end is None or self._running:
                        self._cv.wait()
                        continue
                    left = self._last_end + QUIET_S - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                self._last_end = None
            if release_freed_memory():
                self.releases["quiet"] += 1


_releaser = _Releaser()


def releasing_freed_memory() -> contextlib.AbstractContextManager[None]:
    """Wrap a piece of heavy torch work (extraction, BN re-estimation, classification): afterwards, freed memory
    above ``KEPT_FREE_BYTES`` is returned at once, and all of it once the process has been quiet for ``QUIET_S``."""
    return _releaser.working()


def releases() -> dict[str, int]:
    """How many releases this process made so far, by reason (``over_budget``, ``quiet``)."""
    return dict(_releaser.releases)
