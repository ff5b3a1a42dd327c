"""The built website in a real browser: every page of the smoke build, at a desktop and a phone width.

Headless Chromium from the system packages (Debian: ``apt-get install -y chromium``; the tests
skip without it) is driven over the DevTools protocol through a pipe (``--remote-debugging-pipe``:
no network port and no package beyond the standard library). Each page of the table of contents
is opened at 1,400 and 390 CSS pixels and fails on

* an error in the console (a script error, a failed ``console.error``, a local file that does
  not load; resources from the internet are left out: the tests run offline);
* horizontal overflow of the main column (a wide table or equation must scroll inside its own
  box, not push the page sideways);
* visible text (code cells left out) with ``nan``, a raw Python dict or raw Markdown (``**``);
* a chapter that records a paper finding whose verdict box (CSS class ``verdict-box``) is not
  in its first screen.

Screenshots of every page and width go to ``_build/screenshots/`` of the repository (a CI
artifact). The book is the one ``tests/conftest.py``'s ``built_book`` fixture builds for
``tests/test_book.py``: one smoke build for both. ``NC_BROWSER_BOOK=<root>`` checks a book
already built in ``<root>/_build/html`` instead (e.g. after ``make book``).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from ncutils.book import profiles

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "_build" / "screenshots"
#: name -> (width, height) in CSS pixels
VIEWPORTS = {"desktop": (1400, 900), "phone": (390, 844)}


def chromium() -> str | None:
    """The Chromium (or Chrome) executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """A headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4).

    Messages are JSON terminated by a NUL byte, as Puppeteer's ``pipe: true`` sends them.
    """

    def __init__(self, executable: str) -> None:
        self._profile = tempfile.mkdtemp(prefix="nc-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # the browser's ends move above fd 9, clear of the 3 and 4 the shell dups them onto
        to_browser_read, from_browser_write = (self._high(to_browser_read), self._high(from_browser_write))
        arguments = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
                     "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                     "--remote-debugging-pipe", f"--user-data-dir={self._profile}", "about:blank"]
        # the browser reads commands on fd 3 and writes answers and events on fd 4
        shell = f'exec "$0" "$@" 3<&{to_browser_read} 4>&{from_browser_write} {to_browser_read}<&- {from_browser_write}>&-'
        # bash: dash takes no file descriptor above 9 in a redirection
        self.process = subprocess.Popen([shutil.which("bash") or "bash", "-c", shell, executable, *arguments],
                                        pass_fds=(to_browser_read, from_browser_write),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=True)

    @staticmethod
    def _high(fd: int) -> int:
        import fcntl

        moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
        os.close(fd)
        return moved

    def _read(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                return None
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False,
             timeout: float = 60) -> dict[str, Any]:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read(max(0.0, deadline - time.monotonic()))
            if answer is None:
                raise TimeoutError(f"no answer to {method} within {timeout} s")
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(event.get("method") == method for event in self.events):
            event = self._read(max(0.0, deadline - time.monotonic()))
            if event is None:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.events.append(event)

    def settle(self, seconds: float) -> None:
        """Collect events for ``seconds`` (late scripts and their errors)."""
        deadline = time.monotonic() + seconds
        while (event := self._read(max(0.0, deadline - time.monotonic()))) is not None:
            self.events.append(event)

    def open(self, url: str, width: int, height: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}, session=True)
        self.events.clear()
        self.send("Page.navigate", {"url": url}, session=True)
        self.wait_for("Page.loadEventFired")
        self.settle(0.5)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, width: int, max_height: int = 6000) -> Path:
        """The whole page (down to ``max_height`` CSS pixels) as a PNG, taken with a window that tall
        (captureBeyondViewport would lay the page out again, sideways scrolled on some pages)."""
        height = self.send("Page.getLayoutMetrics", session=True)["cssContentSize"]["height"]
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": int(min(height, max_height)),
                                                         "deviceScaleFactor": 1, "mobile": width < 600}, session=True)
        self.settle(0.3)
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def console_errors(self) -> list[str]:
        """Errors of the page: script exceptions, console.error, local files that failed to load."""
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append((details.get("exception") or {}).get("description") or details.get("text", ""))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                url = entry.get("url") or ""
                if entry.get("source") == "network" and not url.startswith("file:"):
                    continue  # offline: a CDN (MathJax) or the launch buttons' hosts do not answer
                errors.append(f"{entry['text']} {url}".strip())
        return errors

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)


#: Reads the page in the browser: overflow of the main column, visible text outside code, and the
#: verdict box's position. Text inside code cells, <pre>, <code>, closed <details> and hidden
#: elements is left out.
_INSPECT = r"""
(() => {
  const main = document.querySelector("main#main-content") || document.querySelector("main") || document.body;
  const article = document.querySelector(".bd-article-container") || main;
  const skip = "pre, code, script, style, .cell_input, .highlight, .MathJax, mjx-container, .math, [hidden]";
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  const parts = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip)) continue;
    const closed = parent.closest("details:not([open])");
    if (closed && !parent.closest("summary")) continue;
    if (!parent.getClientRects().length) continue;
    parts.push(node.textContent);
  }
  const wide = [];
  for (const element of article.querySelectorAll("*")) {
    const box = element.getBoundingClientRect();
    const frame = article.getBoundingClientRect();
    if (box.width > 0 && box.right > frame.right + 2 && !element.closest("pre, .highlight")) {
      let scroller = element.parentElement, inside = false;
      while (scroller && scroller !== article) {
        const style = getComputedStyle(scroller);
        if (["auto", "scroll", "hidden", "clip"].includes(style.overflowX)) { inside = true; break; }
        scroller = scroller.parentElement;
      }
      if (!inside) wide.push(`${element.tagName.toLowerCase()}.${element.className || ""} right ${Math.round(box.right)} > ${Math.round(frame.right)}`);
    }
  }
  const box = document.querySelector(".verdict-box");
  return {
    text: parts.join(" "),
    page_overflow: document.documentElement.scrollWidth - window.innerWidth,
    main_overflow: Math.max(main.scrollWidth - main.clientWidth, article.scrollWidth - article.clientWidth),
    wide: wide.slice(0, 5),
    verdict_box: box ? box.getBoundingClientRect().top + window.scrollY : null,
    screen: window.innerHeight,
  };
})()
"""


def _problems(report: dict[str, Any], errors: list[str]) -> list[str]:
    import re

    problems = [f"console error: {error[:300]}" for error in errors]
    if report["page_overflow"] > 1 or report["main_overflow"] > 1:
        problems.append(f"horizontal overflow: page {report['page_overflow']} px, main column "
                        f"{report['main_overflow']} px; {report['wide']}")
    text = report["text"]
    checks = {
        "'nan' in visible text": r"(?<![\w.])nan(?![\w])",
        "a raw Python dict in visible text": r"\{\s*'[^'\n]{1,60}'\s*:",
        "raw Markdown (**) in visible text": r"\*\*",
    }
    for what, pattern in checks.items():
        found = re.search(pattern, text, flags=re.IGNORECASE)
        if found:
            problems.append(f"{what}: ...{text[max(0, found.start() - 60):found.end() + 60]!r}...")
    return problems


@pytest.fixture(scope="module")
def browser():
    executable = chromium()
    if executable is None:
        pytest.skip("no Chromium for the browser checks: apt-get install -y chromium")
    instance = Browser(executable)
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def book_root(request) -> Path:
    """The smoke build of ``built_book``, or a book already built at ``$NC_BROWSER_BOOK`` (a root folder)."""
    built = os.environ.get("NC_BROWSER_BOOK")
    if built:
        return Path(built)
    return request.getfixturevalue("built_book")[0]


@pytest.fixture(scope="module")
def page_reports(book_root, browser):
    """Open every page of the table of contents at every viewport; screenshots to _build/screenshots."""
    root = book_root
    html = root / "_build" / "html"
    from ncutils.book import chapters as registry

    # a chapter of library checks only (measuring_collapse) records no finding, so it has no verdict box
    judged = {declared.stem for declared in registry.CHAPTERS if declared.findings}
    chapters = set(profiles.toc_chapters(root)) & judged
    reports = {}
    for page in profiles.toc_pages(root):
        for name, (width, height) in VIEWPORTS.items():
            browser.open((html / f"{page}.html").resolve().as_uri(), width, height)
            report = browser.evaluate(_INSPECT)
            browser.screenshot(SCREENSHOTS / f"{page.replace('/', '__')}-{name}-{width}.png", width)
            report["problems"] = _problems(report, browser.console_errors())
            report["chapter"] = page.rsplit("/", 1)[-1] in chapters and page.startswith("book/generated/")
            reports[page, name] = report
    return reports


@pytest.mark.slow
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_every_page_is_clean_in_the_browser(page_reports, viewport):
    failures = {page: report["problems"] for (page, name), report in page_reports.items()
                if name == viewport and report["problems"]}
    assert not failures, json.dumps(failures, indent=1, ensure_ascii=False)


@pytest.mark.slow
def test_screenshots_of_every_page_are_saved(page_reports):
    for page, name in page_reports:
        width = VIEWPORTS[name][0]
        assert (SCREENSHOTS / f"{page.replace('/', '__')}-{name}-{width}.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_every_chapter_shows_its_verdict_box_in_the_first_screen(page_reports, viewport):
    chapters = {page: report for (page, name), report in page_reports.items() if name == viewport and report["chapter"]}
    assert chapters, "the book has no chapters"
    if all(report["verdict_box"] is None for report in chapters.values()):
        pytest.xfail("no chapter has a verdict box (class verdict-box) yet: it is being added at the top of "
                     "each chapter; this check turns on by itself once one page has it")
    missing = sorted(page for page, report in chapters.items() if report["verdict_box"] is None)
    late = {page: f"{report['verdict_box']:.0f} px > {report['screen']} px" for page, report in chapters.items()
            if report["verdict_box"] is not None and report["verdict_box"] >= report["screen"]}
    assert not missing and not late, f"without a verdict box: {missing}; below the first screen: {late}"


def test_the_checks_flag_nan_raw_dicts_and_markdown_but_not_ordinary_words():
    clean = {"text": "Nanjing financial data: 0.5, {x} and * one star", "page_overflow": 0, "main_overflow": 0,
             "wide": []}
    assert _problems(clean, []) == []
    for text, what in (("value NaN here", "'nan'"), ("{'depth': 3}", "raw Python dict"), ("**bold**", "raw Markdown")):
        assert what in _problems({**clean, "text": text}, [])[0]
    assert _problems({**clean, "page_overflow": 12}, [])[0].startswith("horizontal overflow")
    assert _problems(clean, ["boom"]) == ["console error: boom"]


def test_each_script_is_kept_once_whatever_its_file_name():
    import sys

    sys.path.insert(0, str(REPO / "book" / "_ext"))
    try:
        import companion_html
    finally:
        sys.path.pop(0)
    from sphinx.builders.html._assets import _JavaScript

    scripts = [_JavaScript(None, body="const A = 1"), _JavaScript("x.js"), _JavaScript("", body="const A = 1"),
               _JavaScript("x.js")]
    context = {"script_files": scripts}
    companion_html._dedupe_scripts(None, "page", "page.html", context, None)
    assert [str(script) for script in context["script_files"]] == [str(scripts[0]), str(scripts[1])]
