"""Screenshots of every page for the README: ``python scripts/screenshots.py [PAGE...]`` -> docs/screenshots/*.png
(``make screenshots`` installs the dev requirements and Debian's chromium first).

Starts the app on a free port and drives Debian's headless chromium (Playwright)
through each page in a typical state (a preset on Explore, a sample on Classify, a
finished search on Specialise, two pinned subnets on Compare, a new room on Present).
"""

from __future__ import annotations

import argparse
import re

from app.paths import ROOT

OUT = ROOT / "docs" / "screenshots"
IDLE = ("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')")
PAGES = ("explore", "classify", "specialise", "compare", "carbon", "about", "present")
PINS = "r224-d44444-k77777777777777777777-e66666666666666666666,r160-d22222-k33xx33xx33xx33xx33xx-e33xx33xx33xx33xx33xx"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pages", nargs="*", metavar="PAGE", help=f"only these pages (default: all of {', '.join(PAGES)})")
    only = set(ap.parse_args().pages)
    if only - set(PAGES):
        ap.error(f"unknown page(s) {', '.join(sorted(only - set(PAGES)))}; choose from {', '.join(PAGES)}")

    from playwright.sync_api import sync_playwright

    from app.ui.serve import serving

    OUT.mkdir(parents=True, exist_ok=True)
    with serving() as app:
        url = app.url
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = b.new_page(viewport={"width": 1400, "height": 2000})

            def shot(name: str, path: str, wait_for: str | None = None, action=None) -> None:
                if only and name not in only:
                    return
                page.goto(url + path)
                page.wait_for_selector('[data-testid="stApp"]', timeout=120_000)
                if wait_for:
                    page.wait_for_selector(wait_for, timeout=120_000)
                page.wait_for_function(IDLE, timeout=120_000)
                if action:
                    action()
                    page.wait_for_function(IDLE, timeout=120_000)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
                print("wrote", OUT / f"{name}.png")

            shot("explore", "/?cfg=r208-d24243-k53xx337357xx3335533x-e64xx336663xx4333634x&hw=note10", '[data-testid="stVegaLiteChart"]')
            shot("classify", "/classify?sample=church_1.jpg", '[data-testid="stVegaLiteChart"]')

            def run_search() -> None:
                page.get_by_role("button", name="Search").click()
                page.get_by_text(re.compile(r"Found r\d+-d\d{5}-")).wait_for(timeout=120_000)

            shot("specialise", "/specialise", None, run_search)
            shot("compare", f"/compare?pins={PINS}", '[data-testid="stDataFrame"]')
            shot("carbon", "/carbon", '[data-testid="stVegaLiteChart"]')
            shot("about", "/about", '[data-testid="stVegaLiteChart"]')
            shot("present", "/present?cfg=r160-d22222-k33xx33xx33xx33xx33xx-e33xx33xx33xx33xx33xx&hw=note10")
            b.close()


if __name__ == "__main__":
    main()
