"""Heavy work (extraction, BN re-estimation, classification) in one bounded first-come-first-served queue.

A room of sessions shares two cores: the metrics path (a slider move: predictors and charts, no torch) must not wait
behind a dozen classifications running at once, each with torch's own threads. Heavy work therefore runs at most
``workers`` at a time, in arrival order; a person waiting sees their place in the queue, and when more than
``max_waiting`` are already waiting the page says the server is busy instead of freezing (bounded, nothing lost:
their image and settings stay, a rerun tries again).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterator

from app.allocator import releasing_freed_memory

WORKERS = 1  # heavy jobs at once: torch already uses both cores for one job (2 workers: sliders p95 1.6 s, docs/load.md)
MAX_WAITING = 24  # people waiting before "busy, try again"
POLL_S = 0.25  # how often a waiting page's position is refreshed


class Busy(Exception):
    """The queue is full; the message is one line for people."""


class WorkQueue:
    """A FIFO of tickets: at most ``workers`` run, at most ``max_waiting`` wait."""

    def __init__(self, workers: int = WORKERS, max_waiting: int = MAX_WAITING) -> None:
        self.workers, self.max_waiting = workers, max_waiting
        self._cv = threading.Condition()
        self._waiting: deque[int] = deque()
        self._running = 0
        self._tickets = itertools.count()

    def snapshot(self) -> tuple[int, int]:
        """(running, waiting) now."""
        with self._cv:
            return self._running, len(self._waiting)

    @contextmanager
    def slot(self, on_wait: Callable[[int], None] | None = None, timeout: float = 300.0) -> Iterator[float]:
        """Hold one of the ``workers`` slots for the body; yields the seconds spent waiting. ``on_wait(ahead)`` is
        called while waiting with the number of people ahead. ``Busy`` when the queue is full or ``timeout`` passes."""
        t0 = time.perf_counter()
        with self._cv:
            if len(self._waiting) >= self.max_waiting:
                raise Busy(f"The server is busy: {len(self._waiting)} people are waiting for a classification. "
                           "Try again in a few seconds (your image and settings are kept).")
            ticket = next(self._tickets)
            self._waiting.append(ticket)
            try:
                while not (self._running < self.workers and self._waiting[0] == ticket):
                    if time.perf_counter() - t0 > timeout:
                        raise Busy("The server stayed busy for too long. Try again in a moment "
                                   "(your image and settings are kept).")
                    ahead = self._waiting.index(ticket) + self._running
                    if on_wait is not None:
                        self._cv.release()
                        try:
                            on_wait(ahead)
                        finally:
                            self._cv.acquire()
                    self._cv.wait(POLL_S)
            except BaseException:
                self._waiting.remove(ticket)
                self._cv.notify_all()
                raise
            self._waiting.popleft()
            self._running += 1
        try:
            with releasing_freed_memory():  # freed memory returned above a budget, and all of it when quiet
                yield time.perf_counter() - t0
        finally:
            with self._cv:
                self._running -= 1
                self._cv.notify_all()


HEAVY = WorkQueue()  # the server's one queue for heavy work
