"""Stopping a build: SIGINT, SIGTERM and SIGKILL leave no process of its tree behind.

Every build here runs in a subprocess whose environment carries a marker of the test's own
(``NCUTILS_TEST_TREE``); every process the build starts inherits it, however it is started
and whichever session it is in, so the test finds them without trusting the build's own
bookkeeping (:mod:`ncutils.book.stopping`).

The quick tests build a fake book of two chapters: ``quick`` ends at once, ``slow`` starts a
"training" process in a session of its own that writes a heartbeat file, and waits for a
release file. The slow test interrupts the repository's smoke build while it trains.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")

from conftest import _ignore  # noqa: E402
from test_book import REPO, make_book, make_notebook  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

#: Runs ncutils.book's command line on a fake book (project_root() is this checkout's).
#: The fake book's chapters are declared in the driver's registry.
DRIVER = ("import sys, pathlib\nfrom ncutils.book import chapters, cli, provenance\n"
          "from ncutils.chapter import Budget, Chapter\n"
          "chapters.CHAPTERS[:] = [Chapter(stem=stem, title=stem, defaults={}, findings=(), budget=Budget('toy', 1.0),\n"
          "                                trains_nothing='a test chapter') for stem in ('quick', 'slow')]\n"
          "provenance.project_root = lambda: pathlib.Path(sys.argv[1])\nsys.exit(cli.main(sys.argv[2:]))")


def marked(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE or process.pid == os.getpid():
            continue
        try:
            if process.environ().get("NCUTILS_TEST_TREE") == marker:
                found.append(process)
        except psutil.Error:
            continue
    return found


def kernel_paths(processes: list[psutil.Process]) -> list[str]:
    """The connection file and IPC socket folder of the kernel that runs the trainer.

    (Another kernel may be ending by itself as the build is stopped; its files are its
    manager's to remove, and the manager may be frozen by then.)
    """
    paths = []
    for process in processes:
        try:
            arguments = process.cmdline()
            trains = any("trainer.py" in " ".join(child.cmdline()) for child in process.children())
        except psutil.Error:
            continue
        if trains and "-f" in arguments[:-1] and any("ipykernel" in argument for argument in arguments):
            connection = Path(arguments[arguments.index("-f") + 1])
            paths.append(str(connection))
            try:
                paths.append(str(Path(json.loads(connection.read_text())["ip"]).parent))
            except (OSError, ValueError, KeyError):
                pass
    return paths


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def survivors(marker: str, timeout: float = 30) -> list[str]:
    """The marked processes still alive after ``timeout`` seconds (the guard may need a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = marked(marker)
        if not left:
            return []
        time.sleep(0.25)
    described = []
    for process in left:
        try:
            described.append(f"{process.pid}: {' '.join(process.cmdline())[:150]}")
        except psutil.Error:
            pass
    for process in left:  # do not leave them running on the machine
        try:
            process.kill()
        except psutil.Error:
            pass
    return described


def start(command: list[str], cwd: Path, marker: str, store: Path, *, ignore_sigint: bool = True) -> subprocess.Popen:
    environment = {**os.environ, "NCUTILS_TEST_TREE": marker, "NCUTILS_RUNS_DIR": str(store),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    environment.pop("NC_FINDINGS_FILE", None)

    def background() -> None:
        # what `build &` in a non-interactive shell (or CI) does: SIGINT is ignored
        signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_sigint else signal.SIG_DFL)

    return subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=background)


@pytest.fixture
def new_marker():
    """Markers for builds; whatever carries one when the test ends is killed (and fails it, above)."""
    markers = []

    def make() -> str:
        markers.append(uuid.uuid4().hex)
        return markers[-1]

    yield make
    for marker in markers:
        for process in marked(marker):
            try:
                process.kill()
            except psutil.Error:
                pass


@pytest.fixture
def fake_book(tmp_path):
    stems = ("quick", "slow")
    root = make_book(tmp_path / "book", {stem: {} for stem in stems}, toc_stems=stems)
    (root / "notebooks" / "chap.ipynb").unlink()
    spans = tmp_path / "spans"
    spans.mkdir()
    make_notebook(root / "notebooks" / "quick.ipynb", body="print('quick')")
    trainer = spans / "trainer.py"
    trainer.write_text(f"import pathlib, time\nwhile True:\n    pathlib.Path({str(spans / 'heartbeat')!r})"
                       f".write_text(str(time.time()))\n    time.sleep(0.2)\n")
    make_notebook(root / "notebooks" / "slow.ipynb",
                  body=f"import pathlib, subprocess, sys, time\nspans = pathlib.Path({str(spans)!r})\n"
                       f"trainer = subprocess.Popen([sys.executable, {str(trainer)!r}], start_new_session=True)\n"
                       f"while not (spans / 'heartbeat').exists():\n    time.sleep(0.1)\n"
                       f"(spans / 'slow.started').touch()\n"
                       f"while not (spans / 'release').exists():\n    time.sleep(0.1)\n"
                       f"trainer.kill()")
    return root, spans


def build_command(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-P", "-c", DRIVER, str(root), "build", "--profile", "smoke", "--no-html", *extra]


# Each signal once and each number of workers at least once (the signal's handling and the
# number of kernels to stop are independent); the real smoke build below takes all three signals.
@pytest.mark.parametrize(("workers", "signum"), [("1", signal.SIGINT), ("2", signal.SIGTERM), ("2", signal.SIGKILL)],
                         ids=["1-worker-SIGINT", "2-workers-SIGTERM", "2-workers-SIGKILL"])
def test_a_stopped_build_stops_its_kernels_and_their_processes_and_the_next_resumes(fake_book, tmp_path, signum,
                                                                                    workers, new_marker):
    root, spans = fake_book
    marker = new_marker()
    build = start(build_command(root, "--workers", workers), root, marker, tmp_path / "store")
    try:
        wait_for(lambda: (spans / "slow.started").exists() or build.poll() is not None, 180, "the slow chapter")
        assert build.poll() is None, build.communicate()[0]
        processes = marked(marker)
        assert len(processes) >= 3  # at least a kernel, the trainer, and the build's helpers
        kernel_files = kernel_paths(processes)
        assert kernel_files
        os.kill(build.pid, signum)
        output, _ = build.communicate(timeout=60)
    finally:
        if build.poll() is None:
            build.kill()
    assert survivors(marker) == [], output
    # the killed kernels' connection files and socket folders are removed
    assert all(not Path(path).exists() for path in kernel_files), kernel_files
    # the "training" process stopped writing
    beat = (spans / "heartbeat").read_text()
    time.sleep(1)
    assert (spans / "heartbeat").read_text() == beat
    state = json.loads((root / "_build" / "notebooks" / "smoke" / "state.json").read_text())
    assert "slow" not in state
    if signum == signal.SIGKILL:
        assert build.returncode == -signal.SIGKILL
        events = (tmp_path / "store" / "events.log").read_text()
        assert "died without stopping its processes" in events
    else:
        assert build.returncode == 128 + signum, output
        name = signal.Signals(signum).name
        assert f"slow (smoke): interrupted by {name}" in output
        assert f"interrupted by {name}" in (tmp_path / "store" / "events.log").read_text()
    if workers == "1" and signum != signal.SIGKILL:
        assert "quick" in state  # it finished before the slow one started

    # the next build resumes: what finished is reused, the rest runs
    (spans / "release").touch()
    marker = new_marker()
    again = start(build_command(root, "--workers", workers), root, marker, tmp_path / "store")
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert "slow (smoke): running" in output
    if "quick" in state:
        assert "quick (smoke): unchanged" in output
    assert survivors(marker, timeout=10) == []


def test_a_second_signal_while_stopping_does_not_break_the_stop(fake_book, tmp_path, new_marker):
    root, spans = fake_book
    marker = new_marker()
    build = start(build_command(root, "--workers", "2"), root, marker, tmp_path / "store", ignore_sigint=False)
    try:
        wait_for(lambda: (spans / "slow.started").exists() or build.poll() is not None, 180, "the slow chapter")
        os.kill(build.pid, signal.SIGINT)
        time.sleep(0.05)
        os.kill(build.pid, signal.SIGTERM)
        output, _ = build.communicate(timeout=60)
    finally:
        if build.poll() is None:
            build.kill()
    assert build.returncode == 130, output
    assert survivors(marker) == [], output


def test_a_stopped_run_of_one_chapter_stops_its_kernel_and_its_processes(fake_book, tmp_path, new_marker):
    root, spans = fake_book
    marker = new_marker()
    command = [sys.executable, "-P", "-c", DRIVER, str(root), "run", "slow", "--profile", "smoke"]
    run = start(command, root, marker, tmp_path / "store")
    try:
        wait_for(lambda: (spans / "slow.started").exists() or run.poll() is not None, 180, "the slow chapter")
        assert run.poll() is None, run.communicate()[0]
        os.kill(run.pid, signal.SIGTERM)
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 143, output
    assert "the run of slow was interrupted by SIGTERM" in output
    assert survivors(marker) == [], output


@pytest.mark.slow
def test_the_smoke_build_stopped_while_it_trains_leaves_no_process(tmp_path, new_marker):
    """SIGINT (ignored by the shell, as for `build &`), SIGTERM and SIGKILL to the real smoke build."""
    root = tmp_path / "repo"
    shutil.copytree(REPO, root, ignore=_ignore)
    store = tmp_path / "store"
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        marker = new_marker()
        build = start([sys.executable, "-m", "ncutils.book", "build", "--profile", "smoke", "--no-html",
                       "--workers", "2"], root, marker, store)

        def training() -> bool:
            # a process below a kernel: a chapter's training (or measuring) worker
            for process in marked(marker):
                try:
                    if "ipykernel" in " ".join(process.parent().cmdline()):
                        return True
                except (psutil.Error, AttributeError):
                    continue
            return build.poll() is not None

        try:
            wait_for(training, 300, "a chapter to start training")
            assert build.poll() is None, build.communicate()[0][-4000:]
            os.kill(build.pid, signum)
            output, _ = build.communicate(timeout=120)
        finally:
            if build.poll() is None:
                build.kill()
        assert survivors(marker) == [], output[-4000:]
        expected = -signal.SIGKILL if signum == signal.SIGKILL else 128 + signum
        assert build.returncode == expected, output[-4000:]
        state = json.loads((root / "_build" / "notebooks" / "smoke" / "state.json").read_text())
        assert all(entry.get("notebook_sha256") for entry in state.values())
