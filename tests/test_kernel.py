"""The build's kernels start without the "running over TCP without encryption" warning (issue 16),
and what a notebook writes to stderr is still kept."""

from __future__ import annotations

import os

import nbformat
import pytest

from ncutils.book import cli, execute
from test_book import make_book, make_notebook, toy_chapters  # noqa: F401 (a fixture)


@pytest.mark.skipif(os.name == "nt", reason="Windows has no IPC transport: the build keeps TCP there")
def test_kernels_talk_over_ipc():
    manager = execute.kernel_manager_class()(kernel_name=execute.ensure_kernel())
    assert manager.transport == "ipc"


@pytest.mark.skipif(os.name == "nt", reason="Windows has no IPC transport: the build keeps TCP there")
def test_no_tcp_warning_and_real_errors_still_show(tmp_path, capfd, toy_chapters):
    root = make_book(tmp_path)
    make_notebook(root / "notebooks" / "chap.ipynb",
                  body='import sys\nprint("a real problem", file=sys.stderr)\nprint(overrides["epochs"])')
    cli.build("smoke", root=root, html=False)
    captured = capfd.readouterr()
    assert "without encryption" not in captured.err + captured.out
    executed = nbformat.read(str(root / "_build" / "notebooks" / "smoke" / "chap.ipynb"), as_version=4)
    streams = {output.get("name"): output.get("text") for output in executed.cells[-1].outputs}
    assert streams == {"stderr": "a real problem\n", "stdout": "1\n"}


@pytest.mark.skipif(os.name == "nt", reason="Windows has no IPC transport")
def test_ipc_sockets_stay_out_of_the_working_folder(tmp_path, monkeypatch, toy_chapters):
    import glob
    import tempfile

    root = make_book(tmp_path / "book")
    monkeypatch.chdir(tmp_path)
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "nc-kernel-*")))
    cli.build("smoke", root=root, html=False)
    assert not list(tmp_path.glob("kernel-ipc*")) and not list(root.glob("kernel-ipc*"))
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "nc-kernel-*"))) <= before  # removed after use
