"""A real Chromium for the page tests (Debian's, driven by Playwright without a download),
and the axe-core audit they run on each page."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import axe_playwright_python
from playwright.async_api import Browser, Frame, Page, async_playwright

from tests.servers import unavailable

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALLED = CHROMIUM.exists()
AXE = Path(axe_playwright_python.__file__).parent / "axe.min.js"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# Every WCAG 2.x A and AA rule axe has, and its best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


@contextlib.asynccontextmanager
async def chromium(*args: str) -> AsyncIterator[Browser]:
    """A headless Chromium (with ``args`` besides the usual ones), closed afterwards; skips
    (or fails under CI) without one."""
    if not INSTALLED:
        unavailable("Chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *args]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def axe_violations(target: Page | Frame, *, frames: bool = True) -> list[dict[str, Any]]:
    """What axe-core finds wrong on ``target``'s document (with its frames unless told not
    to: a frame from another origin is audited on its own). The page must let axe's script
    in (a context with ``bypass_csp=True``)."""
    await target.add_script_tag(path=AXE)
    result = await target.evaluate(
        "([tags, frames]) => axe.run(document, {iframes: frames, "
        "runOnly: {type: 'tag', values: tags}})",
        [AXE_TAGS, frames],
    )
    return [
        {"id": v["id"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in result["violations"]
    ]
