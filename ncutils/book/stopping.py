"""Stopping a build: its workers, kernels and their training processes stop together.

A build runs each notebook in a worker process; the worker starts a Jupyter kernel in a
session of its own (jupyter_client does so, so that interrupting a kernel reaches its
children), and a chapter may train in processes of its own. Neither the build's process
group nor its direct children therefore cover everything it started. :func:`process_tree`
(used by ``python -m ncutils.book build`` and ``run``) makes them one tree:

* it marks the build's environment with :data:`TREE_VARIABLE`; every process the build
  starts inherits the mark, however it is started and wherever it is reparented;
* SIGINT and SIGTERM raise :class:`Interrupted` in the build (also when the shell started
  the build in the background with SIGINT ignored); the build then stops every marked
  process and its own descendants (:func:`stop_descendants`), says which chapters were
  interrupted, and exits with 128 + the signal's number (130, 143);
* a *guard* process, in a session of its own, holds the read end of a pipe that only the
  build can write to. When the build dies without closing it properly (``kill -9``, the
  out-of-memory killer), the pipe reaches end-of-file and the guard stops every marked
  process, then exits.

Stopping freezes the processes first (SIGSTOP), again and again until no new one appears
(a frozen process starts no other), then kills them (SIGKILL). Nothing is left half-written:
every file of the store and of ``_build/`` is replaced atomically (:mod:`ncutils._io`), and
the store's locks are ``flock`` locks that the operating system releases with their holder.
A chapter that was running has no entry in its profile's ``state.json``, so the next build
runs it again and reuses every chapter that had finished.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ncutils.book import provenance

if TYPE_CHECKING:
    import psutil

__all__ = ["TREE_VARIABLE", "Interrupted", "ignore_interrupts", "process_tree", "stop_descendants", "stop_marked"]

#: Environment variable that marks every process of one build (its value names the build).
TREE_VARIABLE = "NCUTILS_BUILD_TREE"
#: What the build writes to its guard when it ends by itself (then the guard stops nothing).
_RELEASE = b"released\n"

_active: dict[str, Any] = {}


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the build.

    A :class:`KeyboardInterrupt`, so that ``except Exception`` blocks (papermill's, the
    build's own) let it pass and asyncio re-raises it at once.

    Example
    -------
    >>> error = Interrupted(signal.SIGTERM)
    >>> error.signal_name, error.exit_status
    ('SIGTERM', 143)
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.signal_name = signal.Signals(self.signum).name
        super().__init__(self.signal_name)

    @property
    def exit_status(self) -> int:
        """128 + the signal number, as a shell reports a process the signal ended."""
        return 128 + self.signum


def _psutil() -> Any:
    import psutil

    return psutil


def _describe(process: psutil.Process) -> str:
    with contextlib.suppress(Exception):
        arguments = process.cmdline()
        text = " ".join(arguments)
        if "ipykernel_launcher" in text:
            return f"{process.pid} (kernel)"
        if "resource_tracker" in text:
            return f"{process.pid} (resource tracker)"
        if "multiprocessing" in text or "spawn_main" in text:
            return f"{process.pid} (worker)"
        return f"{process.pid} ({Path(arguments[0]).name if arguments else process.name()})"
    return str(process.pid)


def _is_gone(process: psutil.Process) -> bool:
    psutil = _psutil()
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def marked_processes(tag: str, *, exclude: set[int] | frozenset[int] = frozenset()) -> list[psutil.Process]:
    """The live processes of this user whose environment has ``TREE_VARIABLE=tag``."""
    psutil = _psutil()
    uid = os.getuid() if hasattr(os, "getuid") else None
    found = []
    for process in psutil.process_iter(["uids", "status"]):
        if process.pid in exclude or process.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        uids = process.info.get("uids")
        if uid is not None and uids is not None and uids.real != uid:
            continue
        try:
            if process.environ().get(TREE_VARIABLE) == tag:
                found.append(process)
        except psutil.Error:
            continue
    return found


def _stop(find: Callable[[set[int]], list[psutil.Process]], *, timeout: float = 10.0) -> list[str]:
    """Freeze what ``find`` returns until nothing new appears, then kill it; describe what was stopped."""
    psutil = _psutil()
    frozen: dict[int, psutil.Process] = {}
    exclude = {os.getpid()}
    for _ in range(200):
        found = [process for process in find(exclude | set(frozen)) if not _is_gone(process)]
        if not found:
            break
        for process in found:
            with contextlib.suppress(psutil.Error):
                process.suspend()
                frozen[process.pid] = process
    stopped = []
    connection_files = [path for path in map(_connection_file, frozen.values()) if path is not None]
    for process in frozen.values():
        description = _describe(process)
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
        except psutil.Error:
            description += " (could not be killed)"
        stopped.append(description)
    # wait without reaping: a direct child is reaped by whoever started it (multiprocessing)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(_is_gone(process) for process in frozen.values()):
        time.sleep(0.05)
    for path in connection_files:
        _remove_kernel_files(path)
    return stopped


def _connection_file(process: psutil.Process) -> Path | None:
    """The connection file of a Jupyter kernel (``... ipykernel_launcher -f FILE``), else None."""
    try:
        arguments = process.cmdline()
    except Exception:  # psutil.Error: gone, or not ours to read
        return None
    if not any("ipykernel" in argument for argument in arguments) or "-f" not in arguments[:-1]:
        return None
    return Path(arguments[arguments.index("-f") + 1])


def _remove_kernel_files(connection_file: Path) -> None:
    """What a killed kernel's manager would have removed: its connection file, its socket folder.

    Only the build's own socket folders (``nc-kernel-*``,
    :func:`~ncutils.book.execute.kernel_manager_class`) are removed.
    """
    import json
    import shutil

    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        address = json.loads(connection_file.read_text()).get("ip", "")
        folder = Path(address).parent
        if folder.name.startswith("nc-kernel-"):
            shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        connection_file.unlink()


def _own_tracker(process: psutil.Process) -> bool:
    # this process's multiprocessing resource tracker runs no work and ends with this process;
    # killed, multiprocessing would start another one (and warn about it)
    try:
        return process.ppid() == os.getpid() and "multiprocessing.resource_tracker" in " ".join(process.cmdline())
    except Exception:  # psutil.Error: gone, or not ours to read
        return False


def stop_marked(tag: str) -> list[str]:
    """Stop every process marked with ``tag`` (but this one); describe what was stopped."""
    return _stop(lambda exclude: marked_processes(tag, exclude=exclude))


def stop_descendants() -> list[str]:
    """Stop this process's descendants and, inside :func:`process_tree`, every marked process.

    The marks find the processes whose parent died already (they are no longer descendants);
    the descendants, the processes a build started when :func:`process_tree` is not in use
    (a test calling :func:`ncutils.book.cli.build` itself).
    """
    psutil = _psutil()
    tag = _active.get("tag")

    def find(exclude: set[int]) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            for process in psutil.Process().children(recursive=True):
                found[process.pid] = process
        # the children of a frozen process that is no longer our descendant
        for pid in exclude:
            with contextlib.suppress(psutil.Error):
                for process in psutil.Process(pid).children(recursive=True):
                    found[process.pid] = process
        if tag is not None:
            found.update((process.pid, process) for process in marked_processes(tag, exclude=exclude))
        guard = _active.get("guard")
        return [process for pid, process in found.items()
                if pid not in exclude and (guard is None or pid != guard.pid) and not _own_tracker(process)]

    return _stop(find)


def ignore_interrupts() -> None:
    """Let SIGINT from a terminal reach only the build, which stops its workers itself.

    A worker's initializer: a Ctrl-C reaches the whole foreground process group, and a worker
    interrupted by it would start tearing its kernel down while the build stops it anyway.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_guard(tag: str, events: Path | None) -> tuple[subprocess.Popen, Any] | None:
    read_end, write_end = os.pipe()  # not inherited: only this process holds the write end
    package_root = str(Path(__file__).resolve().parents[2])
    environment = {key: value for key, value in os.environ.items() if key != TREE_VARIABLE}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    # -P: not the current folder first on the path (a checkout there may hold another ncutils)
    command = [sys.executable, "-P", "-m", "ncutils.book.stopping", "--guard", tag, str(os.getpid())]
    if events is not None:
        command.append(str(events))
    try:
        guard = subprocess.Popen(command, stdin=read_end, env=environment, start_new_session=True)
    except OSError:
        os.close(write_end)
        return None
    finally:
        os.close(read_end)
    return guard, os.fdopen(write_end, "wb", buffering=0)


@contextlib.contextmanager
def process_tree(*, events: Path | None = None, guard: bool = True) -> Iterator[str]:
    """Make the processes started inside the block one tree that stops together (see above).

    Parameters
    ----------
    events : pathlib.Path, optional
        Log (``events.log``) where the guard notes what it stopped after the build died.
    guard : bool, default True
        Start the guard process (only on platforms with ``psutil`` and ``os.getuid``).

    Yields
    ------
    str
        The tree's mark (the value of :data:`TREE_VARIABLE`).

    Raises
    ------
    Interrupted
        On SIGINT or SIGTERM, after every process of the tree has been stopped.
    """
    if _active:
        raise RuntimeError("process_tree() is already active in this process")
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    previous_mark = os.environ.get(TREE_VARIABLE)
    os.environ[TREE_VARIABLE] = tag
    handlers: dict[int, Any] = {}
    stopping = {"signal": None}

    def interrupt(signum: int, frame: Any) -> None:
        if stopping["signal"] is not None:  # a second signal while stopping: stopping goes on
            return
        stopping["signal"] = signum
        raise Interrupted(signum)

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            handlers[signum] = signal.signal(signum, interrupt)
    guarded = None
    if guard and hasattr(os, "getuid"):
        with contextlib.suppress(ImportError):
            _psutil()
            guarded = _start_guard(tag, events)
    _active.update(tag=tag, guard=guarded[0] if guarded else None)
    try:
        yield tag
    except BaseException:
        # stop the tree first, also when a signal arrives meanwhile (it is ignored then)
        stopping["signal"] = stopping["signal"] or -1
        stop_descendants()
        raise
    finally:
        stopping["signal"] = stopping["signal"] or -1
        _active.clear()
        if guarded is not None:
            process, pipe = guarded
            with contextlib.suppress(OSError):
                pipe.write(_RELEASE)
            pipe.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        if previous_mark is None:
            os.environ.pop(TREE_VARIABLE, None)
        else:
            os.environ[TREE_VARIABLE] = previous_mark
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _guard(tag: str, build_pid: int, events: str | None) -> int:
    """Wait for the build to end; if it ended without releasing the pipe, stop its tree."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    received = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(0, 64):
            received += chunk
    if received.endswith(_RELEASE):
        return 0
    stopped = stop_marked(tag)
    message = (f"the build (process {build_pid}) died without stopping its processes; "
               f"stopped {len(stopped)}: {', '.join(stopped) or 'none was left'}")
    print(f"ncutils.book: {message}", file=sys.stderr, flush=True)
    if events:
        with contextlib.suppress(OSError):
            Path(events).parent.mkdir(parents=True, exist_ok=True)
            with open(events, "a") as handle:
                handle.write(f"{provenance.utc_now()} {message}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover - the guard process
    if len(sys.argv) >= 4 and sys.argv[1] == "--guard":
        sys.exit(_guard(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None))
    sys.exit("usage: python -m ncutils.book.stopping --guard TAG BUILD_PID [EVENTS]")
