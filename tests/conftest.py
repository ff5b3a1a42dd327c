"""Shared test helpers: tiny training configs, a one-thread torch fixture, edits of the code keys
see, the smoke build of the book, and the gpu and paper profiles built at tiny size in the
background while the other tests run."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from ncutils.store import code as store_code
from ncutils.train import TrainConfig

# The tests see the environment CI gives them: a store, findings file, data folder, worker count or
# git state a developer's shell sets for the book is not theirs (a test that needs one sets it).
for _name in ("NCUTILS_RUNS_DIR", "NCUTILS_DATA_DIR", "NCUTILS_BOOK_WORKERS", "NCUTILS_BUILD_TREE",
              "NC_FINDINGS_FILE", "NC_NOTEBOOK", "NC_PARAMETERS", "NC_GIT_COMMIT", "NC_GIT_DIRTY"):
    os.environ.pop(_name, None)

#: A four-class Gaussian mixture small enough to train in well under a second.
GAUSSIAN = {"num_classes": 4, "dim": 8, "n_per_class": 20, "n_test_per_class": 10}


def tiny_config(**overrides) -> TrainConfig:
    """A config that trains in well under a second on CPU."""
    settings = dict(dataset="gaussian", dataset_kwargs=GAUSSIAN, arch="mlp",
                    arch_kwargs={"depth": 3, "width": 16}, epochs=3, batch_size=16, lr=0.05,
                    device="cpu")
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture
def one_thread():
    # tiny matrices: a single thread is faster and immune to a busy machine
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def edit_code(monkeypatch, module: str, suffix: bytes = b'\n"""An edited docstring."""\n') -> None:
    """Make the store's keys see package module ``module`` (``"metrics"``, ``"theory/lesde"`` or
    ``"ncutils.metrics"``) with different code: its key digest gets ``suffix``."""
    name = module if module.startswith("ncutils") else "ncutils." + module.replace("/", ".")
    real = store_code.module_code
    monkeypatch.setattr(store_code, "module_code",
                        lambda other: real(other) + (suffix if other == name else b""))


def train_and_measure(config: TrainConfig, **options):
    """:func:`ncutils.train.train`, then :func:`ncutils.measure.measure_run` (its sweeps)."""
    from ncutils.measure import measure_run
    from ncutils.train import train

    force = options.get("force", False)
    return measure_run(train(config, **options), force=force)


# --------------------------------------------------------------------------- the whole book

REPO = Path(__file__).resolve().parent.parent
IGNORED = {".git", ".venv", "_build", "runs", "__pycache__", ".pytest_cache", ".hypothesis", ".ipynb_checkpoints"}


def _ignore(directory: str, names: list[str]) -> set[str]:
    skipped = {name for name in names if name in IGNORED or name.endswith(".egg-info")}
    if Path(directory).resolve() == (REPO / "book").resolve():
        skipped.add("generated")
    return skipped


def _build(root: Path, *options: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(root)}
    environment.pop("NC_FINDINGS_FILE", None)
    return subprocess.run(
        [sys.executable, "-m", "ncutils.book", "build", "--profile", "smoke", *options],
        cwd=root, env=environment, capture_output=True, text=True, timeout=900,
    )


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """The whole book built twice on the smoke profile in a copy of the working tree: (root, first, second).

    The second build reuses every notebook; it skips the website, which the first one rendered.
    """
    root = tmp_path_factory.mktemp("book") / "repo"
    shutil.copytree(REPO, root, ignore=_ignore)
    first = _build(root)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    second = _build(root, "--no-html")
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    return root, first, second


# --------------------------------------------------------------------------- the tiny builds

#: The test that runs the gpu and paper profiles at tiny size (tests/test_tiny.py). Its builds take
#: a few minutes of two cores: they start in the background as soon as the test is selected, at a
#: lower priority, while the other tests run, and the test (moved to the end) collects them.
TINY_TEST = "test_gpu_and_paper_profiles_run_every_chapter_to_a_verdict_at_tiny_size"

# Runs the builds one after the other (they share the stand-in data folder and the store) and
# writes what each returned; the arguments: the test process's pid, root, store, output file, JSON
# [[profile, chapters]]. When the test process is gone (killed before it could stop the builds),
# it stops the running build with SIGTERM (which stops its kernels and processes) and ends.
_TINY_DRIVER = """
import json, os, signal, subprocess, sys, time
tests, root, store, output, builds = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
environment = {**os.environ, "PYTHONPATH": root, "NCUTILS_RUNS_DIR": store}
environment.pop("NC_FINDINGS_FILE", None)

def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

results = {}
for profile, chapters in builds:
    command = [sys.executable, "-m", "ncutils.book", "build", "--profile", profile, "--tiny"]
    command += [argument for stem in chapters or () for argument in ("--chapter", stem)]
    started = time.perf_counter()
    log = output + "." + profile + ".log"  # a file, not a pipe: a pipe nobody reads fills and blocks the build
    with open(log, "w") as handle:
        build = subprocess.Popen(command, cwd=root, env=environment, stdout=handle, stderr=subprocess.STDOUT)
        while build.poll() is None:
            if not alive(tests):
                build.send_signal(signal.SIGTERM)
                build.wait()
                sys.exit(1)
            time.sleep(0.5)
    with open(log) as handle:
        text = handle.read()
    results[profile] = {"returncode": build.returncode, "seconds": time.perf_counter() - started,
                        "output": text[-8000:]}
    if build.returncode:
        break
with open(output + ".part", "w") as handle:
    json.dump(results, handle)
os.replace(output + ".part", output)
"""


# Starts the driver in a session of its own, niced, prints its pid and exits: the driver is then
# no descendant of the test process, so tests that stop their process's descendants on the way
# out (``ncutils.book.stopping``, a build run in-process) leave it alone.
_TINY_LAUNCHER = """
import os, subprocess, sys
driver = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=lambda: os.nice(10))
print(driver.pid)
"""


class TinyBuilds:
    """``build --profile gpu --tiny``, then the paper profile's chapters whose tiny run is not
    line for line the gpu's (:func:`ncutils.book.tiny.same_as`), in a copy of the working tree,
    in the background (a process group of its own, niced, outside the test process's tree)."""

    def __init__(self, folder: Path):
        from ncutils.book import chapters, tiny

        self.folder = folder
        self.root, self.store, self.output = folder / "repo", folder / "runs", folder / "results.json"
        shutil.copytree(REPO, self.root, ignore=_ignore)
        self.every = [chapter.stem for chapter in chapters.CHAPTERS]
        self.repeated = tiny.same_as(self.root, "paper", "gpu")
        self.builds = [("gpu", None), ("paper", [stem for stem in self.every if stem not in self.repeated])]
        launched = subprocess.run(
            [sys.executable, "-c", _TINY_LAUNCHER, sys.executable, "-c", _TINY_DRIVER, str(os.getpid()),
             str(self.root), str(self.store), str(self.output), json.dumps(self.builds)],
            cwd=self.root, capture_output=True, text=True, check=True, timeout=60)
        self.pid = int(launched.stdout)

    def running(self) -> bool:
        """Whether the driver runs (an exited one may stay a zombie where nothing reaps orphans)."""
        import psutil

        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def wait(self, timeout: float = 1800) -> dict:
        """What each build returned: ``{profile: {"returncode", "seconds", "output"}}``."""
        deadline = time.monotonic() + timeout
        while not self.output.exists() and self.running():
            assert time.monotonic() < deadline, f"the tiny builds did not end in {timeout:.0f} s"
            time.sleep(1)
        assert self.output.exists(), "the tiny builds' driver ended without writing its results"
        return json.loads(self.output.read_text())

    def stop(self) -> None:
        """Stop the builds if they still run (SIGTERM: each stops its kernels and processes) and
        remove the copy."""
        for signum, grace in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
            if self.output.exists() or not self.running():  # the driver writes its results last
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signum)
            deadline = time.monotonic() + grace
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.2)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(config, items):
    selected = [item for item in items if item.name == TINY_TEST]
    if not selected or config.option.collectonly:
        return
    items.remove(selected[0])
    items.append(selected[0])  # last: it waits for the builds started now
    config._nc_tiny_builds = TinyBuilds(Path(tempfile.mkdtemp(prefix="nc-tiny-")))


def pytest_unconfigure(config):
    builds = getattr(config, "_nc_tiny_builds", None)
    if builds is not None:
        builds.stop()


@pytest.fixture
def tiny_builds(request) -> TinyBuilds:
    """The tiny builds started when :data:`TINY_TEST` was selected."""
    builds = getattr(request.config, "_nc_tiny_builds", None)
    if builds is None:
        pytest.fail(f"the tiny builds start only when {TINY_TEST} is collected (tests/conftest.py)")
    return builds
