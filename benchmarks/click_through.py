"""Time the dashboard as a user meets it: press Train, then open each page until its figures are drawn.

The script starts ``streamlit run app.py`` on a free loopback port and drives Debian's
Chromium with Playwright, through the helpers of ``tests/test_browser.py``. It prints the
seconds from the click on Train to the last figure of each page, and the server's peak
resident memory. The settings are the app's defaults unless ``--defaults`` gives a JSON
object of other ones. A baseline run with the browser test's small configuration comes
first in the same script, and every time is also printed as a ratio to the baseline's
total, which drifts less with the machine's load than seconds do:

    python benchmarks/click_through.py
    python benchmarks/click_through.py --defaults '{"width": 20}' --no-baseline

It needs ``requirements-dev.txt`` and Debian's ``chromium``. Screenshots go to
``test-artifacts/click-through-*.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_browser  # noqa: E402


def load_average() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def peak_resident_bytes(pid: int) -> int:
    """Return the peak resident set (VmHWM) of a running process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def click_through(defaults: dict | None, prefix: str) -> tuple[dict[str, float], int]:
    """Run one click-through against a fresh server; return the page times and the server's peak memory."""
    from playwright.sync_api import sync_playwright

    server, url = test_browser.start_server(defaults, test_browser.ARTIFACTS / f"{prefix}streamlit.log")
    try:
        with sync_playwright() as playwright:
            browser, page = test_browser.open_browser(playwright)
            try:
                times = test_browser.run_click_through(page, url, prefix)
            finally:
                browser.close()
        peak = peak_resident_bytes(server.pid)
    finally:
        test_browser.stop_server(server)
    return times, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time the dashboard from the click on Train to every page's figures.")
    parser.add_argument("--defaults", default=None, help="JSON object of settings for the sidebar (default: the app's defaults)")
    parser.add_argument("--prefix", default="click-through-", help="file-name prefix of the screenshots")
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline run with the small configuration")
    args = parser.parse_args(argv)
    try:
        defaults = json.loads(args.defaults) if args.defaults else None
    except json.JSONDecodeError as error:
        parser.error(f"--defaults is not valid JSON ({error}); pass an object such as '{{\"width\": 20}}'")
    if not isinstance(defaults, (dict, type(None))):
        parser.error(f"--defaults must be a JSON object, got {args.defaults}")
    reason = test_browser.missing_browser_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2

    test_browser.ARTIFACTS.mkdir(exist_ok=True)
    print(f"load average before: {load_average()} on {os.cpu_count()} logical CPUs")
    baseline_total = None
    if not args.no_baseline:
        print(f"baseline settings: {json.dumps(test_browser.SMALL)}")
        baseline, baseline_peak = click_through(test_browser.SMALL, args.prefix + "baseline-")
        baseline_total = list(baseline.values())[-1]
        print(f"baseline: click to all figures {baseline_total:.1f} s, server peak memory {baseline_peak / 2**30:.2f} GiB")

    print(f"settings: {json.dumps(defaults) if defaults else 'the app defaults'}")
    times, peak = click_through(defaults, args.prefix)
    previous = 0.0
    print(f"{'page':<10} {'click to figures (s)':>21} {'this page (s)':>14} {'/ baseline total':>17}")
    for name, seconds in times.items():
        ratio = f"{seconds / baseline_total:.2f}" if baseline_total else "-"
        print(f"{name:<10} {seconds:>21.1f} {seconds - previous:>14.1f} {ratio:>17}")
        previous = seconds
    print(f"click to all figures: {previous:.1f} s; server peak memory {peak / 2**30:.2f} GiB")
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
