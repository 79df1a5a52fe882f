"""A real browser for the tests: Debian's headless Chromium, driven by Playwright.

A pytest plugin (tests/conftest.py loads it) with two fixtures:

- `browser`: a `Browsers` launcher. `await browser.open(base)` starts a Chromium of its
  own (a fresh profile: its own cookies, storage and cache) on a `BrowserPage` whose
  relative paths are under `base`; each is closed after the test, and the test errors
  if any of its processes outlives that.
- `browser_page`: one `BrowserPage` on the node of the `api` fixture.

Every action waits ACTION_TIMEOUT_S at most, and a test that uses them TEST_TIMEOUT_S
(unless it is marked with a timeout of its own). A failed test leaves a screenshot and
the page's HTML under ARTIFACTS; its report says where. Without the browser at CHROMIUM
the test fails, saying how to install it: it never skips. The browser is never
downloaded (no `playwright install`): Playwright only drives the system's Chromium.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urljoin, urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Cookie, Locator, Page, Playwright, Response

    from tests.conftest import Api

CHROMIUM = os.environ.get("TRIGGERD_CHROMIUM", "/usr/bin/chromium")
ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync")
ARTIFACTS = Path(os.environ.get("TRIGGERD_BROWSER_ARTIFACTS")
                 or Path(tempfile.gettempdir()) / "triggerd-browser")
ACTION_TIMEOUT_S = 10.0
TEST_TIMEOUT_S = 60.0
EXIT_WAIT_S = 5.0
# Set in the browser's environment, to find its processes (with their children) again.
_TAG = "TRIGGERD_BROWSER_ID"
_FAILED = pytest.StashKey[bool]()
_INSTALL = ("install Debian's chromium package (`apt-get install chromium`; ./scripts/test "
            "does it when run as root), or point TRIGGERD_CHROMIUM at a Chromium binary")

State = Literal["attached", "detached", "hidden", "visible"]


class BrowserPage:
    """One page in a Chromium of its own. Paths are relative to `base`; `requests` holds
    every URL the browser requested, `errors` the console's errors (a refusal by the
    Content-Security-Policy among them) and uncaught exceptions. `page` and `context`
    are Playwright's own, for anything else."""

    def __init__(self, context: BrowserContext, page: Page, base: str) -> None:
        self.context, self.page, self.base = context, page, base.rstrip("/") + "/"
        self.requests: list[str] = []
        self.errors: list[str] = []
        context.on("request", lambda request: self.requests.append(request.url))
        page.on("console", lambda message: self._console(message.type, message.text))
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.set_default_timeout(ACTION_TIMEOUT_S * 1000)
        page.set_default_navigation_timeout(ACTION_TIMEOUT_S * 1000)

    def __repr__(self) -> str:
        return f"BrowserPage({self.base!r}, at {self.page.url!r})"

    def _console(self, kind: str, text: str) -> None:
        if kind == "error":
            self.errors.append(text)

    def url(self, path: str) -> str:
        return urljoin(self.base, path)

    async def goto(self, path: str = "/", *, status: int | None = 200) -> Response:
        """Loads `path` and waits for its load event; asserts the status unless None."""
        response = await self.page.goto(self.url(path))
        assert response is not None, path
        if status is not None:
            assert response.status == status, (path, response.status, await response.text())
        return response

    async def fill(self, selector: str, value: str) -> None:
        await self.page.locator(selector).fill(value)

    async def click(self, selector: str) -> None:
        await self.page.locator(selector).click()

    async def text(self, selector: str = "body") -> str:
        """The rendered text of the one element `selector` matches."""
        return await self.page.locator(selector).inner_text()

    async def wait_for(self, selector: str, *, state: State = "visible") -> Locator:
        """Waits until the first element `selector` matches is in `state`; all of them."""
        found = self.page.locator(selector)
        await found.first.wait_for(state=state)
        return found

    async def cookies(self) -> dict[str, Cookie]:
        """The browser's cookies for `base`, by name."""
        return {cookie["name"]: cookie for cookie in await self.context.cookies(self.base)}

    async def screenshot(self, path: str | Path) -> Path:
        """The whole page as a PNG at `path`."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=target, full_page=True)
        return target

    def foreign_requests(self) -> list[str]:
        """Requested URLs of any other origin than `base` (data: and blob: excepted)."""
        origin = urlsplit(self.base)[:2]
        return [url for url in self.requests
                if urlsplit(url)[:2] != origin and urlsplit(url).scheme not in ("data", "blob")]


class Browsers:
    """Starts Chromiums for one test and ends them all, with every process of theirs."""

    def __init__(self, playwright: Playwright, root: Path) -> None:
        self._playwright, self._root = playwright, root
        self._opened: list[tuple[BrowserPage, str]] = []

    async def open(self, base: str) -> BrowserPage:
        tag = uuid.uuid4().hex
        profile = Path(tempfile.mkdtemp(prefix="profile-", dir=self._root))
        home = profile.with_name(profile.name + "-home")  # nothing written to ~/.config
        home.mkdir()
        env: dict[str, str | float | bool] = {**os.environ, _TAG: tag, "HOME": str(home),
               "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache")}
        context = await self._playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=list(ARGS), env=env,
            timeout=ACTION_TIMEOUT_S * 1000)
        page = context.pages[0] if context.pages else await context.new_page()
        opened = BrowserPage(context, page, base)
        self._opened.append((opened, tag))
        return opened

    async def close(self, failed_as: str | None) -> list[int]:
        """Closes every browser (after a screenshot and the HTML of each page when the
        test failed, named after `failed_as`); the pids of processes that outlived it."""
        alive: dict[int, int] = {}
        for n, (opened, tag) in enumerate(self._opened):
            if failed_as is not None:
                await _keep_evidence(opened, ARTIFACTS / f"{failed_as}-{n}")
            processes = _processes(tag)
            await opened.context.close()
            alive.update(processes)
        await self._playwright.stop()
        return await _outlived(alive)


async def _keep_evidence(opened: BrowserPage, stem: Path) -> None:
    try:
        await opened.screenshot(f"{stem}.png")
        Path(f"{stem}.html").write_text(await opened.page.content())
    except Exception as exc:  # the page may be what failed; the close must go on
        Path(f"{stem}.txt").write_text(f"no screenshot: {exc!r}\n")


def _stat(pid: str) -> tuple[int, int, str]:
    """(parent pid, start time, state) from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[19]), fields[0]


def _processes(tag: str) -> dict[int, int]:
    """pid -> start time of the processes whose environment carries `tag` (the browser),
    and of all their descendants (zygotes, renderers, which start with another one)."""
    parents: dict[int, int] = {}
    started: dict[int, int] = {}
    tagged: set[int] = set()
    marker = f"{_TAG}={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent, start, _ = _stat(entry.name)
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                tagged.add(int(entry.name))
        except OSError:  # gone meanwhile, or another user's
            continue
        parents[int(entry.name)], started[int(entry.name)] = parent, start
    ours = set(tagged)
    while grown := {pid for pid, parent in parents.items() if parent in ours} - ours:
        ours |= grown
    return {pid: started[pid] for pid in ours}


def _still_running(pid: int, start: int) -> bool:
    try:
        _, now_start, state = _stat(str(pid))
    except OSError:
        return False
    return now_start == start and state not in ("Z", "X")


async def _outlived(processes: dict[int, int]) -> list[int]:
    """Waits EXIT_WAIT_S for `processes` to end; kills (SIGKILL) and returns those left."""
    deadline = time.monotonic() + EXIT_WAIT_S
    while (left := [pid for pid, start in processes.items() if _still_running(pid, start)]) \
            and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def _slug(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", nodeid).strip("_")[-150:]


@pytest.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browsers]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: {_INSTALL}", pytrace=False)
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -e '.[dev]'", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="tgd-browser-"))
    browsers = Browsers(await async_playwright().start(), root)
    try:
        yield browsers
    finally:
        failed = request.node.stash.get(_FAILED, False)
        left = await browsers.close(_slug(request.node.nodeid) if failed else None)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"Chromium processes outlived the browser's close (killed): {left}"


@pytest.fixture
async def browser_page(browser: Browsers, api: Api) -> BrowserPage:
    return await browser.open(api.base)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()) and not item.get_closest_marker(
                "timeout"):
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT_S))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                     pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed and "browser" in getattr(
            item, "fixturenames", ()):
        item.stash[_FAILED] = True
        report.sections.append(("browser", f"screenshot and HTML of each page: "
                                           f"{ARTIFACTS / _slug(item.nodeid)}-<n>.png|.html"))
    return report
