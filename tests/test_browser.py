"""The web app in a real browser: Debian's Chromium driven by Playwright (never
`playwright install`, which downloads a browser of its own), against `pqwatch serve --port 0`
on an archive built from the recordings.

Each page is loaded with its Content-Security-Policy in force and must log no console error
(a blocked inline style or script would be one) and not scroll sideways at 375 px; it is
photographed at 375 and 1280 px into test-artifacts/browser/; axe-core then checks it (in a
context that lets the test inject axe past the CSP) and no serious or critical violation may
be found. Under CI (CI set) a missing Chromium or axe-core fails these tests; elsewhere they
are skipped with the reason.

axe-core comes from the npm registry, checked against its published sha512:
`make test` fetches it into the venv (`python -m tests.test_browser --fetch-axe`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from tests import shared_archive
from tests.conftest import REPO, readline_within, rows

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

AXE_VERSION = "4.10.2"
AXE_SHA512 = (
    "RE3mdQ7P3FRSe7eqCWoeQ/Z9QXrtniSjp1wUjt5nRC3WIpz5rSCve6o3fsZ2aCpJtrZjSZgjwXAoTO5k4tEI0w=="
)
AXE_URL = f"https://registry.npmjs.org/axe-core/-/axe-core-{AXE_VERSION}.tgz"
# In the venv `make` builds: set up with it, never committed, gone with `make clean`.
AXE = Path(sys.prefix) / "share" / "axe-core" / AXE_VERSION / "axe.min.js"
ARTIFACTS = REPO / "test-artifacts" / "browser"
WIDTHS = (375, 1280)
REQUIRED = bool(os.environ.get("CI"))


def fetch_axe(dest: Path = AXE) -> Path:
    """Download axe-core's tarball from the npm registry, check it, keep axe.min.js."""
    if dest.is_file():
        return dest
    import httpx

    data = httpx.get(AXE_URL, timeout=60, follow_redirects=True).raise_for_status().content
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != AXE_SHA512:
        raise SystemExit(f"{AXE_URL}: sha512 {digest} is not the published {AXE_SHA512}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.extractfile("package/axe.min.js")
        assert member is not None
        script = member.read()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(".part")
    part.write_bytes(script)
    part.replace(dest)
    return dest


def _missing(reason: str) -> NoReturn:
    if REQUIRED:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[test]')")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        _missing("Chromium not found (apt-get install chromium; .ci/run does it)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[str, Path]]:
    """`pqwatch serve --port 0` on a built archive, as a user starts it; stopped by SIGTERM."""
    from tests.test_web import build_archive

    folder = tmp_path_factory.mktemp("browser-archive")
    config = shared_archive.build(request, lambda: build_archive(folder))
    with shared_archive.opened(request, config):
        proc = subprocess.Popen(
            [sys.executable, "-m", "pqwatch", "--config", str(config), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        line = readline_within(proc.stdout)
        assert line.startswith("Serving pqwatch on http://127.0.0.1:"), line
        yield line.split()[3].rstrip("/"), config
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and err == "", err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@dataclass
class Tab:
    """A page whose console errors and uncaught exceptions are collected."""

    page: Page
    errors: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, context: BrowserContext) -> Tab:
        tab = cls(context.new_page())
        tab.page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
        tab.page.on("pageerror", lambda exc: tab.errors.append(f"uncaught: {exc}"))
        return tab


@pytest.fixture(autouse=True)
def _reads_the_archive(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    shared_archive.reading_when_used(request, monkeypatch, "site")


@pytest.fixture(scope="module")
def strict(browser: Browser) -> Iterator[BrowserContext]:
    """Pages as a visitor gets them: the Content-Security-Policy in force."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context
    context.close()


@pytest.fixture(scope="module")
def audited(browser: Browser) -> Iterator[BrowserContext]:
    """The same pages, with the CSP bypassed so that axe-core can be injected."""
    if not AXE.is_file():
        _missing(f"axe-core not found at {AXE} (make test fetches it)")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    yield context
    context.close()


def test_search_then_a_result_then_its_page(strict: BrowserContext, site: tuple[str, Path]) -> None:
    base, _ = site
    tab = Tab.open(strict)
    page = tab.page
    page.goto(base + "/")
    page.get_by_label("Search", exact=True).fill("hospice")
    page.get_by_label("Order").select_option("newest")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"/search\?q=hospice&sort=newest"))
    assert page.locator("ol.hits mark").count() > 0
    summary = page.locator("p.summary").inner_text()
    assert re.match(r"[0-9,]+ match(es)?; showing", summary), summary
    first = page.locator("ol.hits h3 a").first
    heading = first.inner_text()
    first.click()
    page.wait_for_url(re.compile(r"/q/"))
    assert page.get_by_role("heading", level=1).inner_text() == heading
    assert page.get_by_role("heading", name="Timeline").is_visible()
    assert page.locator("section.answer .text p").count() > 0  # the answer itself
    assert page.get_by_role("link", name="The official record").get_attribute("href", timeout=5000)
    page.go_back()
    page.get_by_label("Search", exact=True).fill("hospice (")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    alert = page.get_by_role("alert")
    assert "malformed query" in alert.inner_text()
    assert page.get_by_label("Search", exact=True).input_value() == "hospice ("
    assert tab.errors == []
    page.close()


def _pages(base: str, config: Path) -> dict[str, str]:
    [(token,)] = rows(config.parent / "pqwatch.db", "SELECT token FROM subscriber")
    return {
        "home": "/",
        "search": "/search?q=school&sort=newest",
        "search-malformed": "/search?q=hospice+(",
        "question-with-table": "/q/1724464",
        "question-grouped": "/q/2021-01-26/143686",
        "statement": "/q/2021-02-01/HLWS747",
        "feeds": "/feeds/",
        "watches": "/watches",
        "watch": "/watches/trade",
        "subscribe": "/subscribe?q=hospice",
        "confirm": "/confirm/AAAAAAAAAAAAAAAAAAAAAAAA",
        "unsubscribe": f"/unsubscribe/{token}/trade",
        "not-found": "/q/HL999999",
    }


SERIOUS = ("serious", "critical")
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def test_each_page_loads_cleanly_fits_a_phone_and_passes_axe(
    strict: BrowserContext, audited: BrowserContext, site: tuple[str, Path]
) -> None:
    base, config = site
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # Never committed, whatever the repository's own .gitignore says.
    (ARTIFACTS.parent / ".gitignore").write_text("*\n")
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    problems: list[str] = []
    for name, path in _pages(base, config).items():
        tab = Tab.open(strict)
        for width in WIDTHS:
            tab.page.set_viewport_size({"width": width, "height": 900})
            response = tab.page.goto(base + path)
            assert response is not None
            wide = tab.page.evaluate("document.documentElement.scrollWidth")
            if wide > width:
                problems.append(f"{name}: {wide} px wide at a {width} px window")
            tab.page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
        expected = []
        if name == "not-found":  # Chromium logs a 404 document as a failed load
            assert response.status == 404
            expected = ["Failed to load resource: the server responded with a status of 404 "
                        "(Not Found)"] * len(WIDTHS)  # fmt: skip
        else:
            assert response.status == 200, (name, response.status)
        if tab.errors != expected:
            problems.append(f"{name}: console errors {tab.errors}")
        tab.page.close()

        audit = audited.new_page()
        audit.goto(base + path)
        audit.add_script_tag(path=str(AXE))
        result: dict[str, Any] = audit.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
        )
        audit.close()
        for v in result["violations"]:
            if v["impact"] in SERIOUS:
                where = [n["target"] for n in v["nodes"]][:3]
                problems.append(f"{name}: axe {v['impact']} {v['id']}: {v['help']} at {where}")
    assert problems == []
    assert sorted(p.name for p in ARTIFACTS.glob("*.png")) == sorted(
        f"{n}-{w}.png" for n in _pages(base, config) for w in WIDTHS
    )


if __name__ == "__main__":  # `make test` runs this first: python -m tests.test_browser --fetch-axe
    if sys.argv[1:] != ["--fetch-axe"]:
        raise SystemExit("usage: python -m tests.test_browser --fetch-axe")
    import httpx

    try:
        print(f"axe-core {AXE_VERSION}: {fetch_axe()}")
    except (httpx.HTTPError, OSError) as exc:  # one line: make goes on, the tests say why
        raise SystemExit(f"could not fetch axe-core from {AXE_URL}: {exc}") from None
