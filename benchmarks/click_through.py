"""Time the dashboard as a user meets it: press Train, then open each page until its figures are drawn.

Starts ``streamlit run app.py`` on a free loopback port, drives Debian's Chromium with
Playwright (the helpers of ``tests/test_browser.py``), and prints the seconds from the
click on Train to the last figure of each page, with the default settings unless
``--defaults`` gives a JSON object of other ones. The same script, run with a small
configuration, gives a baseline on the same machine:

    python benchmarks/click_through.py
    python benchmarks/click_through.py --defaults '{"width": 8, "hidden_layers": 2}'

Screenshots go to ``test-artifacts/click-through-*.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_browser  # noqa: E402


def load_average() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time the dashboard from the click on Train to every page's figures.")
    parser.add_argument("--defaults", default=None, help="JSON object of settings for the sidebar (default: the app's defaults)")
    parser.add_argument("--prefix", default="click-through-", help="file-name prefix of the screenshots")
    args = parser.parse_args(argv)
    defaults = json.loads(args.defaults) if args.defaults else None
    if not isinstance(defaults, (dict, type(None))):
        parser.error(f"--defaults must be a JSON object, got {args.defaults}")
    reason = test_browser.missing_browser_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2

    from playwright.sync_api import sync_playwright

    test_browser.ARTIFACTS.mkdir(exist_ok=True)
    print(f"settings: {json.dumps(defaults) if defaults else 'the app defaults'}")
    print(f"load average before: {load_average()} on {os.cpu_count()} logical CPUs")
    server, url = test_browser.start_server(defaults, test_browser.ARTIFACTS / "click-through-streamlit.log")
    try:
        with sync_playwright() as playwright:
            browser, page = test_browser.open_browser(playwright)
            try:
                start = time.monotonic()
                times = test_browser.run_click_through(page, url, args.prefix)
                wall = time.monotonic() - start
            finally:
                browser.close()
    finally:
        test_browser.stop_server(server)
    previous = 0.0
    print(f"{'page':<10} {'click to figures (s)':>21} {'this page (s)':>14}")
    for name, seconds in times.items():
        print(f"{name:<10} {seconds:>21.1f} {seconds - previous:>14.1f}")
        previous = seconds
    print(f"click to all figures: {previous:.1f} s (script wall time {wall:.1f} s)")
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
