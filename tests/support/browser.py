"""Debian's Chromium, driven by Playwright, for the tests of pages.

Playwright's own browsers are never installed (`playwright install` downloads
one): the tests launch /usr/bin/chromium, which `.ci/chromium` installs with
apt, with a fresh profile each time and nothing that phones home.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_HELP = (
    f"the browser tests drive Debian's Chromium at {CHROMIUM}; install it with "
    "`bash .ci/chromium` (apt-get install chromium). Never `playwright install`: "
    "the tests must not download a browser."
)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Viewports of the screenshots: a laptop and the narrowest phone we support.
WIDE, NARROW = 1280, 360
#: How long a page may take to show what a test waits for, in milliseconds.
TIMEOUT_MS = 10_000


@contextmanager
def chromium(user_data_dir: Path, width: int = WIDE) -> Iterator[BrowserContext]:
    """A browser with a profile of its own in `user_data_dir` (which must be empty)."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir,
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": width, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()
