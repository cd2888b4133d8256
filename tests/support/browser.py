"""Headless Chromium for browser tests: Debian's /usr/bin/chromium driven by Playwright.

No browser is downloaded: Playwright launches the system's Chromium, with a fresh profile
directory per test (`browser_page`) or as one browser whose contexts share nothing, as two people
on two machines would (`chromium`). A test is skipped (with the reason) only when that binary is
missing.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
async def browser_page(tmp_path: Path) -> AsyncIterator[Any]:
    """A Playwright page in a fresh Chromium profile."""
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed")

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1100, "height": 900})
        try:
            yield context.pages[0] if context.pages else await context.new_page()
        finally:
            await context.close()


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium; `await chromium.new_context(ignore_https_errors=True)` per person."""
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()
