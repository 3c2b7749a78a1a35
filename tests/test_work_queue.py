"""The heavy-work queue (app/ui/work_queue.py): first come first served, bounded, with each waiter's place."""

from __future__ import annotations

import threading
import time

import pytest

from app.ui.work_queue import Busy, WorkQueue


def test_one_at_a_time_in_arrival_order_with_places_reported():
    q = WorkQueue(workers=1, max_waiting=10)
    order: list[int] = []
    places: dict[int, list[int]] = {}
    running = []
    peak = [0]

    def job(i: int) -> None:
        with q.slot(on_wait=lambda ahead: places.setdefault(i, []).append(ahead)):
            running.append(i)
            peak[0] = max(peak[0], len(running))
            order.append(i)
            time.sleep(0.15)
            running.remove(i)

    threads = []
    for i in range(5):
        threads.append(threading.Thread(target=job, args=(i,)))
        threads[-1].start()
        time.sleep(0.03)  # arrival order 0..4
    for t in threads:
        t.join()
    assert order == [0, 1, 2, 3, 4] and peak[0] == 1
    assert 0 not in places  # the first found the queue empty
    assert places[4][0] == 4 and places[4][-1] == 1  # 4 ahead on arrival, then its place counts down
    assert all(a >= b for a, b in zip(places[4], places[4][1:]))
    assert q.snapshot() == (0, 0)


def test_a_full_queue_says_busy_and_forgets_nobody():
    q = WorkQueue(workers=1, max_waiting=2)
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        with q.slot():
            started.set()
            release.wait(10)

    def wait_in_line() -> None:
        with q.slot():
            pass

    holder = threading.Thread(target=hold)
    holder.start()
    started.wait(5)
    waiters = [threading.Thread(target=wait_in_line) for _ in range(2)]
    for w in waiters:
        w.start()
    deadline = time.time() + 5
    while q.snapshot() != (1, 2) and time.time() < deadline:
        time.sleep(0.01)
    assert q.snapshot() == (1, 2)
    with pytest.raises(Busy, match="busy"):
        with q.slot():
            pass
    assert q.snapshot() == (1, 2)  # the refused one left no ticket behind
    release.set()
    for t in [holder, *waiters]:
        t.join(5)
    assert q.snapshot() == (0, 0)


def test_an_error_in_the_body_frees_the_slot():
    q = WorkQueue(workers=1)
    with pytest.raises(RuntimeError):
        with q.slot():
            raise RuntimeError("boom")
    assert q.snapshot() == (0, 0)
    with q.slot() as waited:
        assert waited < 0.1
