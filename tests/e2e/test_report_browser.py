"""report.html in a real headless Chromium (Debian's ``chromium`` package, driven by
Playwright): it loads with no console error or failed request, every plot decodes, and
a full-page screenshot is taken.

The browser is required, not optional: without Playwright or a Chromium this test fails
and says what to install.
"""

from __future__ import annotations

import os
import shutil
import struct

import pytest

from tests.jobs.test_report import runs  # noqa: F401 - the module-scoped real study runs

pytestmark = [pytest.mark.slow, pytest.mark.spark]

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def _chromium() -> str:
    """The system Chromium: ``$WHYBATCH_CHROMIUM``, else the first of CHROMIUM_NAMES on PATH."""
    path = os.environ.get("WHYBATCH_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if not path:
        pytest.fail("no Chromium found: install Debian's package (apt-get install -y chromium) "
                    "or set WHYBATCH_CHROMIUM to a Chromium binary")
    return path


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_the_report_loads_in_chromium_with_every_plot_and_no_error(runs, tmp_path):  # noqa: F811
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: pip install 'playwright>=1.40,<2' (the dev extra)")
    from jobs.report import write_report

    report = write_report(runs["full"], tmp_path / "report.html", spec=runs["specs"]["full"],
                          history=runs["history"])
    errors, failed = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium())
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate("""() => Array.from(document.images).map(i => ({
                alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))""")
            sections = page.evaluate("() => Array.from(document.querySelectorAll('section')).map(s => s.id)")
            title = page.title()
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == [] and failed == []
    assert len(images) >= 15
    assert [i for i in images if not (i["complete"] and i["width"] > 0 and i["height"] > 0)] == []
    assert sections[:4] == ["summary", "graph", "estimand", "estimates"] and sections[-1] == "history"
    assert title.startswith("tiny_report")
    width, height = _png_size(shot.read_bytes())
    assert width == 1280 and height > 3000 and shot.stat().st_size > 100_000
