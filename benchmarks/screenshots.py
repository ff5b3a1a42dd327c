"""Screenshots of the built website at desktop and phone widths, in headless Chromium.

    python benchmarks/screenshots.py [--html _build/html] [--out _build/screenshots]

takes the scoreboard and one chapter page at 1400 px (desktop) and 390 px (a phone) and
writes ``<page>-<width>.png``. Needs Chromium (Debian: ``apt-get install chromium``) and a
built book (``make book``). ``tests/test_book.py`` runs it on the smoke build when
Chromium is installed; look at the images to check the layout (badges readable, no table
cut off, nothing wider than the screen).
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
from pathlib import Path

#: Pages (relative to the HTML root) and widths in CSS pixels.
PAGES = ("book/scoreboard.html", "book/generated/parker_p1_depth.html")
WIDTHS = {"desktop": 1400, "phone": 390}
HEIGHT = 2400


def chromium() -> str | None:
    """The Chromium executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG, from its header."""
    header = path.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    return struct.unpack(">II", header[16:24])


def screenshot(browser: str, page: Path, output: Path, width: int, height: int = HEIGHT) -> Path:
    """One full-width screenshot of ``page`` (a local HTML file) at ``width`` CSS pixels."""
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--force-device-scale-factor=1", f"--window-size={width},{height}",
               "--virtual-time-budget=4000", f"--screenshot={output}", page.resolve().as_uri()]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if completed.returncode != 0 or not output.exists():
        raise RuntimeError(f"chromium failed on {page}: {completed.stderr[-2000:]}")
    return output


def take_all(html: Path, out: Path, pages=PAGES, widths=WIDTHS) -> list[Path]:
    browser = chromium()
    if browser is None:
        raise RuntimeError("no Chromium found (Debian: apt-get install chromium)")
    written = []
    for page in pages:
        for name, width in widths.items():
            target = out / f"{Path(page).stem}-{name}-{width}.png"
            written.append(screenshot(browser, html / page, target, width))
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=Path("_build/html"))
    parser.add_argument("--out", type=Path, default=Path("_build/screenshots"))
    arguments = parser.parse_args(argv)
    try:
        for path in take_all(arguments.html, arguments.out):
            width, height = png_size(path)
            print(f"{path} ({width} x {height})")
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
