"""Load test: concurrent browser sessions moving sliders against ``streamlit run`` on 127.0.0.1.

    python benchmarks/load_test.py [--sessions 10] [--interactions 50]

Starts the app (``python -m app.ui.serve``) on a free port, opens ``--sessions`` pages in
Debian's headless chromium (Playwright), and in each performs ``--interactions`` slider
moves on the Explore page (a random one of the four quick sliders, one step). Latency of
one interaction: key press -> the new config in the URL and the script run finished.
Errors: any Streamlit exception box, a timeout (30 s), or a page error. Memory: the
server's RSS after warm-up (the first 10% of interactions) and at the end, with the
session-subnet cache bounded (app.ui.resources).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from common import header, table

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SLIDERS = ["Depth (blocks per stage)", "Width (expand ratio)", "Kernel size", "Input resolution (px)"]


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


IDLE = ("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')")


async def session(browser, url: str, n: int, seed: int, latencies: list, errors: list, done: list) -> None:
    rng = random.Random(seed)
    page = await browser.new_page()
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    await page.goto(url + "/")
    await page.wait_for_selector('[data-testid="stMetricValue"]', timeout=120_000)
    for _ in range(n):
        name = rng.choice(SLIDERS)
        slider = page.get_by_role("slider", name=name)
        value, hi = int(await slider.get_attribute("value")), int(await slider.get_attribute("max"))
        key = "ArrowLeft" if value == hi else "ArrowRight" if value == 0 else rng.choice(["ArrowLeft", "ArrowRight"])
        before = page.url
        t = time.perf_counter()
        try:
            await slider.focus()
            await page.keyboard.press(key)
            await page.wait_for_function("(u) => location.href !== u", arg=before, timeout=30_000)
            await page.wait_for_function(IDLE, timeout=30_000)
            latencies.append(time.perf_counter() - t)
        except Exception as exc:  # noqa: BLE001 - every failure counts as an error
            # was the key press lost in the browser (slider unchanged) or did the app not follow it (URL unchanged)?
            try:
                now = await page.get_by_role("slider", name=name).get_attribute("value", timeout=5_000)
            except Exception:  # noqa: BLE001
                now = "?"
            errors.append(f"{type(exc).__name__} on {name!r} {key} from {value}/{hi}: slider now {now}, "
                          f"URL {'unchanged' if page.url == before else 'changed'}: {str(exc)[:80]}")
        if await page.locator('[data-testid="stException"]').count():
            errors.append("exception shown: " + (await page.locator('[data-testid="stException"]').first.inner_text())[:200])
        done.append(1)
    await page.close()


async def run(sessions: int, interactions: int) -> dict:
    from playwright.async_api import async_playwright

    from app.ui.serve import serving

    with serving() as app:
        url, pid = app.url, app.pid
        latencies: list[float] = []
        errors: list[str] = []
        done: list[int] = []
        warm = max(1, sessions * interactions // 10)
        rss = {"start": rss_mb(pid)}

        async def watch() -> None:
            while len(done) < warm:
                await asyncio.sleep(0.2)
            rss["warm"] = rss_mb(pid)

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            t0 = time.perf_counter()
            watcher = asyncio.create_task(watch())
            await asyncio.gather(*(session(browser, url, interactions, i, latencies, errors, done) for i in range(sessions)))
            wall = time.perf_counter() - t0
            await watcher
            await browser.close()
        rss["end"] = rss_mb(pid)
        return {"latencies": latencies, "errors": errors, "wall": wall, "rss": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--interactions", type=int, default=50)
    args = ap.parse_args()
    res = asyncio.run(run(args.sessions, args.interactions))
    lat = sorted(res["latencies"])
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")  # noqa: E731
    growth = 100 * (res["rss"]["end"] - res["rss"]["warm"]) / res["rss"]["warm"]
    print(header(f"Load test: {args.sessions} browser sessions x {args.interactions} slider moves (Explore page)"))
    print(table(["interactions", "errors", "p50 s", "p95 s", "max s", "wall s", "RSS start MB", "RSS warm MB", "RSS end MB", "RSS growth after warm-up"],
                [[len(lat) + len(res["errors"]), len(res["errors"]), round(p(0.5), 2), round(p(0.95), 2), round(lat[-1] if lat else float("nan"), 2),
                  round(res["wall"], 1), round(res["rss"]["start"]), round(res["rss"]["warm"]), round(res["rss"]["end"]), f"{growth:+.1f}%"]]))
    for e in res["errors"][:10]:
        print("error:", e)
    if lat:
        print(f"\nmean {statistics.mean(lat):.2f} s per interaction (browser round trip, {args.sessions} sessions sharing 1 server)")


if __name__ == "__main__":
    main()
