"""Background work for the notebook explorer: one worker thread, jobs in lanes where the latest request wins.

Extraction, BN re-estimation and classification take a second or more; they run here so that a slider move in the
kernel's main thread only costs a prediction. A lane (e.g. "prefetch", "classify") keeps only its newest job: a job
superseded before it starts is skipped (its future gets ``None``), and a ``delay`` debounces bursts of requests.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable


def _resolve(future: Future, value: Any = None, error: BaseException | None = None) -> None:
    """Complete ``future`` unless it is already done."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class Lane:
    """Jobs of one kind on a shared executor; only the latest submitted runs (``delay`` seconds after it came)."""

    def __init__(self, executor: ThreadPoolExecutor):
        self._executor = executor
        self._lock = threading.Lock()
        self._generation = 0
        self._timer: threading.Timer | None = None
        self._waiting: Future | None = None  # the future whose delay has not run out
        self._latest: Future | None = None

    def submit(self, job: Callable[[], Any], delay: float = 0.0) -> Future:
        """Run ``job`` after ``delay`` seconds unless another job is submitted first; its future resolves to the job's
        result (or exception), or to ``None`` when it was superseded."""
        future: Future = Future()
        with self._lock:
            self._generation += 1
            generation = self._generation
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._waiting is not None:
                _resolve(self._waiting)
                self._waiting = None
            self._latest = future
            if delay > 0:
                self._waiting = future
                self._timer = threading.Timer(delay, self._start, args=(generation, job, future))
                self._timer.daemon = True
                self._timer.start()
        if delay <= 0:
            self._start(generation, job, future)
        return future

    def _start(self, generation: int, job: Callable[[], Any], future: Future) -> None:
        with self._lock:
            if self._waiting is future:
                self._waiting = None
                self._timer = None
        try:
            self._executor.submit(self._run, generation, job, future)
        except RuntimeError:  # the executor was shut down (explorer closed, interpreter exiting)
            _resolve(future)

    def _run(self, generation: int, job: Callable[[], Any], future: Future) -> None:
        if generation != self._generation:
            _resolve(future)
            return
        try:
            _resolve(future, job())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
            _resolve(future, error=exc)

    def latest(self) -> Future | None:
        """The future of the newest job (None before the first)."""
        return self._latest

    def cancel(self) -> None:
        """Drop a job still waiting for its delay."""
        with self._lock:
            self._generation += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._waiting is not None:
                _resolve(self._waiting)
                self._waiting = None
