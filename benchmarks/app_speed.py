"""App speed on this machine: slider move, first classification of a new config, cold start.

    python benchmarks/app_speed.py

- slider move: server time of one Explore rerun after a slider change (Streamlit's
  AppTest runs the page script exactly as the server does), median of 15 moves;
  and of the metric tiles alone (what the page reports as "server time for the metrics").
- first classification of a new config: extraction + fast BN re-estimation + one
  classification at r=224 for the largest subnet, median of 5 (no caches).
- cold start: ``python -m app.ui.serve`` started -> metrics visible in headless chromium.
Goals (issue 5): <= 150 ms, <= 1.5 s, <= 10 s.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import ROOT, header, table

from app.paths import ASSETS


def slider_moves(n: int = 15) -> tuple[float, float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / "explore.py"), default_timeout=300).run()
    from app.space import RESOLUTION_CHOICES

    times = []
    for i in range(n):
        at.select_slider(key="g_r").set_value(RESOLUTION_CHOICES[(i * 7) % len(RESOLUTION_CHOICES)])
        t = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t)
        assert not at.exception, at.exception
    from app.space import SubnetConfig
    from app.ui import metrics
    from app.weights import load_supernet

    card = load_supernet().card
    tile_times = []
    for i in range(n):
        cfg = SubnetConfig.random(100 + i)
        t = time.perf_counter()
        metrics.tiles(cfg, "note10", card)
        tile_times.append(time.perf_counter() - t)
    return statistics.median(times), statistics.median(tile_times[1:])


def first_classification(n: int = 5, cached: bool = False) -> float:
    """Config -> extracted, BN-re-estimated subnet -> top-5 of an image, for the largest subnet at r=224.

    ``cached=False``: a config no session has used (the statistics cache is cleared first);
    ``cached=True``: a config seen before (a preset, a shared link, a slider moved back)."""
    from PIL import Image

    from app.calibrate import clear_statistics_cache
    from app.classify import classify
    from app.space import SubnetConfig
    from app.weights import load_supernet

    net = load_supernet()
    image = Image.open(ASSETS / "samples" / "church_1.jpg").convert("RGB")
    times = []
    for _ in range(n):
        if not cached:
            clear_statistics_cache()
        t = time.perf_counter()
        sub = net.extract(SubnetConfig.largest(224), calibrate=True)
        classify(sub, image, net.card)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cold_start() -> float:
    from playwright.sync_api import sync_playwright

    from app.ui.serve import serving

    t0 = time.perf_counter()
    with serving() as app, sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = b.new_page()
        page.goto(app.url + "/")
        page.wait_for_selector('[data-testid="stMetricValue"]', timeout=120_000)
        seconds = time.perf_counter() - t0
        b.close()
    return seconds


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    rerun, tiles = slider_moves()
    first = first_classification()
    again = first_classification(cached=True)
    cold = cold_start()
    print(header("App speed (issue 5 goals)"))
    print(table(["measure", "this machine", "goal"], [
        ["slider move: whole Explore rerun (server)", f"{rerun * 1000:.0f} ms", "-"],
        ["slider move: metric tiles (server)", f"{tiles * 1000:.1f} ms", "<= 150 ms"],
        ["new config: extract + BN re-estimation + classify, largest r=224", f"{first:.2f} s", "<= 1.5 s"],
        ["  a config seen before (statistics cached)", f"{again:.2f} s", "-"],
        ["cold start -> first rendered page (browser)", f"{cold:.1f} s", "<= 10 s"],
    ]))


if __name__ == "__main__":
    main()
