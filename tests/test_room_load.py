"""The room load generator (benchmarks/room_load.py), small: protocol-level clients against the app on loopback.

Asserts correctness, not timings (those belong in the benchmark): every session opens, every slider / hardware move
lands with the page showing exactly the config moved to and the tiles ``app.display.metric_tiles`` predicts for it,
and an upload over the real protocol (upload URL, HTTP PUT with the XSRF token, the uploader's widget state) is
classified. About 30 s, most of it the app's start and its first classification.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

room_load = pytest.importorskip("room_load")


@pytest.fixture(scope="module")
def server():
    from app.ui.serve import serving

    with serving() as app:
        yield app


def test_eight_clients_ten_seconds_no_errors(server):
    room = room_load.Room(server.url, sessions=8, seconds=10, warmup=0, ramp=1, pause=1, interval=2.0, upload_prob=0.0,
                          timeout=60, seed=1)
    res = asyncio.run(room_load.measure(room, server.pid, 0))
    assert res["errors"] == 0, res["error_examples"]
    assert res["opens"]["n"] == 8 and res["opens"]["errors"] == 0
    assert room.oracle.exact, "the started app serves the bundled supernet: its tiles are checked against the API"
    moves = res["by_kind"]["slider"]["n"] + res["by_kind"]["hardware"]["n"]
    assert moves >= 8, res  # every client moved at least once (timings are not asserted)
    assert room.stats["latency_changed"] > 0  # the latency tile followed the moves
    assert res["rss_start_mb"] and res["rss_end_mb"] and res["rss_busy_mb"]["run_end"]
    assert not any(r.kind != "open" and r.t < room.window_start for r in room.records)  # nothing sent in the pause


def test_the_server_runs_on_tcmalloc(server):
    """app.ui.serve starts again with Debian's tcmalloc preloaded (make serve-tools installs it): its memory map
    has the library and the environment names it."""
    from app.allocator import tcmalloc_library

    lib = tcmalloc_library()
    assert lib, "libtcmalloc-minimal4 is installed by make serve-tools (a prerequisite of make test)"
    maps = Path(f"/proc/{server.pid}/maps").read_text()
    assert "libtcmalloc_minimal" in maps
    assert lib in Path(f"/proc/{server.pid}/environ").read_bytes().decode(errors="replace")


def test_upload_over_the_protocol(server):
    """One person: Classify → Upload → a bundled photo → the answer → back to Explore, each page checked."""
    room = room_load.Room(server.url, sessions=1, seconds=0, warmup=0, ramp=0, timeout=120, seed=2)

    async def go() -> bool:
        import random

        client = room_load.Client(server.url, timeout=120)
        view = room_load.View(hw=room.oracle.name_to_label["note10"])
        try:
            page = await client.open()
            assert room_load.check_explore(page, client, view, room.oracle) == []
            wrong = room_load.View(room_load.SubnetConfig.smallest(), view.hw)  # the checker sees a wrong page
            assert len(room_load.check_explore(page, client, wrong, room.oracle)) >= 3
            room.t0 = room_load.time.perf_counter()
            return await room.upload(client, view, random.Random(0))
        finally:
            await client.close()

    assert asyncio.run(go()), [r.error for r in room.records if not r.ok]
    kinds = [r.kind for r in room.records]
    assert kinds == ["classify_page", "navigate", "upload", "navigate"], kinds
    assert all(r.ok for r in room.records)
    answers = [k for k in room.oracle._seen if k[0] in ("current", "largest")]
    assert len(answers) == 2  # the current subnet's and the largest subnet's answers were read
