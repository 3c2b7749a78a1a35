"""Keep freed tensor memory inside the process (glibc ``malloc`` settings).

By default glibc serves every allocation above 32 MB with a fresh ``mmap`` and returns
it to the kernel on ``free``: each large activation tensor then costs page faults on
first touch. BN re-estimation of the largest subnet (30 images at r=224) allocates
several tensors of 50-220 MB per forward pass and spent over half its time there:
1.27 s with glibc's defaults, 0.60 s with the settings below (this machine, measured).

:func:`keep_freed_memory` serves large blocks from the heap (no ``mmap``), keeps up to
1 GiB of freed memory for reuse, and puts every thread on the main heap (threads other
than the first otherwise use per-thread heaps of at most 64 MB, which fall back to
``mmap``). Call it at the start of a process, before it starts threads. Peak memory
is unchanged; memory freed after a peak is kept for reuse instead of returned: 400 random
configs extracted, re-estimated and run in one process plateau at 2.4 GB RSS (1.75 GB after
160 with glibc's defaults, still growing). A process that peaks high keeps it: the BN-250
accuracy measurement (250 images at r=224 in one batch) held 13-16 GB.
Elsewhere than glibc (macOS, Windows, musl) it does nothing, nor with ``OFA_EXPLORER_KEEP_FREED=0``: a room's
server trades slower BN re-estimation for an RSS that comes back down (docs/load.md#replicas: 2 replicas, 50 sessions:
RSS trend +1% instead of +10%, sliders p95 153 ms, but uploads p95 7.1 s instead of 4.5 s).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
KEPT_FREE_BYTES = 1 << 30

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the settings once per process; True where they took effect (glibc)."""
    global _applied
    if _applied is None:
        import os

        _applied = (sys.platform.startswith("linux") and os.environ.get("OFA_EXPLORER_KEEP_FREED", "1") != "0"
                    and _mallopt())
    return _applied


def _mallopt() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in
               ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, KEPT_FREE_BYTES)))
