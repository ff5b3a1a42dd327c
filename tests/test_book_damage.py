"""Damaged results in ``_build/`` and in the store are detected, reported and rebuilt.

A chapter whose executed notebook, findings file or ``state.json`` entry is damaged runs
again, with a warning on the console and in the events log; the store's own warnings
about damaged entries, which a chapter prints in its notebook, reach both too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ncutils.book import cli, execute
from test_book import REPO, make_book, make_notebook, toy_chapters  # noqa: F401 (a fixture)

#: A chapter that records one (empty) findings section, as findings.record() would.
CHAPTER = ("import json, os\n"
           "content = {'schema': 1, 'profiles': {profile: {'findings': {}, 'checks': {}, 'amendments': {}}}}\n"
           "open(os.environ['NC_FINDINGS_FILE'], 'w').write(json.dumps(content))\n"
           "print('ran')")


@pytest.fixture
def book(tmp_path, monkeypatch, toy_chapters):
    monkeypatch.setenv("NCUTILS_RUNS_DIR", str(tmp_path / "store"))
    monkeypatch.delenv("NC_FINDINGS_FILE", raising=False)
    root = make_book(tmp_path / "book", {"chap": {}})
    make_notebook(root / "notebooks" / "chap.ipynb", body=CHAPTER)
    return root


def build(root: Path, capsys, profile: str = "smoke") -> tuple[str, str]:
    manifest = cli.build(profile, root=root, html=False, workers=1)
    assert [record["notebook"] for record in manifest["notebooks"]] == ["chap"]
    out, err = capsys.readouterr()
    return out, err


def events(root: Path) -> str:
    path = root.parent / "store" / "events.log"
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize(
    ("target", "damage", "message"),
    [
        ("chap.findings.json", lambda path: os.truncate(path, 20), "does not match its checksum"),
        ("chap.findings.json", lambda path: path.unlink(), "chap.findings.json is missing"),
        ("chap.ipynb", lambda path: os.truncate(path, 100), "chap.ipynb does not match its checksum"),
        ("chap.ipynb", lambda path: path.write_bytes(path.read_bytes().replace(b"ran", b"RAN")),
         "chap.ipynb does not match its checksum"),
        ("state.json", lambda path: os.truncate(path, 30), "state.json is damaged"),
        ("state.json", lambda path: path.write_text('{"chap": {"key": 3}}'), "the entry of 'chap' is damaged"),
    ],
)
def test_a_damaged_cached_result_is_rebuilt_with_a_warning(book, capsys, target, damage, message):
    out, _ = build(book, capsys)
    assert "chap (smoke): running" in out
    out, _ = build(book, capsys)
    assert "chap (smoke): unchanged" in out
    damage(book / "_build" / "notebooks" / "smoke" / target)
    out, err = build(book, capsys)
    assert "chap (smoke): running" in out and "done in" in out
    assert message in err and "warning:" in err
    assert message in events(book)
    out, err = build(book, capsys)  # repaired: reused again, silently
    assert "chap (smoke): unchanged" in out and "warning" not in err


def test_damage_is_found_without_checksums_from_older_builds(book, capsys):
    build(book, capsys)
    cache = book / "_build" / "notebooks" / "smoke"
    state = json.loads((cache / "state.json").read_text())
    for entry in state.values():  # as a build before checksums wrote it
        del entry["notebook_sha256"], entry["findings_sha256"]
    (cache / "state.json").write_text(json.dumps(state))
    out, err = build(book, capsys)
    assert "unchanged" in out and "warning" not in err
    (cache / "chap.findings.json").write_text('{"schema": 1')
    out, err = build(book, capsys)
    assert "chap (smoke): running" in out and "chap.findings.json is not valid JSON" in err
    (cache / "state.json").write_text(json.dumps(state))
    os.truncate(cache / "chap.ipynb", 100)
    out, err = build(book, capsys)
    assert "chap (smoke): running" in out and "chap.ipynb is not a notebook" in err


def test_damaged_findings_of_another_profile_do_not_stop_the_build(book, capsys):
    build(book, capsys, "cpu")
    os.truncate(book / "_build" / "notebooks" / "cpu" / "chap.findings.json", 10)
    out, err = build(book, capsys, "smoke")
    assert "chap (smoke): running" in out
    assert "its findings are left out until the next build of profile cpu" in err
    out, err = build(book, capsys, "cpu")
    assert "chap (cpu): running" in out


def test_a_damaged_manifest_does_not_break_the_scoreboard(book, capsys):
    build(book, capsys)
    (book / "_build" / "manifest.json").write_bytes(b'{"notebooks": [{"notebook": "chap"')
    text = cli.scoreboard_markdown(book)
    assert "manifest is damaged" in text
    assert "manifest.json is damaged" in capsys.readouterr().err


def test_the_stores_warnings_about_damaged_entries_reach_the_console_and_the_events_log(tmp_path, monkeypatch,
                                                                                        capsys, toy_chapters):
    store = tmp_path / "store"
    monkeypatch.setenv("NCUTILS_RUNS_DIR", str(store))
    monkeypatch.delenv("NC_FINDINGS_FILE", raising=False)
    root = make_book(tmp_path / "book", {"chap": {}})
    (root / "ncutils" / "__init__.py").unlink()
    (root / "ncutils").rmdir()
    (root / "ncutils").symlink_to(REPO / "ncutils")  # the chapter uses the real store
    make_notebook(root / "notebooks" / "chap.ipynb",
                  body="from ncutils import store\n"
                       "demo = store.Computation('demo', ('ncutils.metrics',))\n"
                       "payload = store.computed_payload('demo', {'n': 3}, computation=demo)\n"
                       "print(store.computed(payload, lambda: [1, 2, 3]))")
    build(root, capsys)
    data = [path for path in (store / "computed").rglob("*") if path.is_file() and path.name.startswith("result")]
    assert len(data) == 1, sorted((store / "computed").rglob("*"))
    data[0].write_bytes(b"damaged")
    cli.build("smoke", root=root, html=False, workers=1, force=True)
    err = capsys.readouterr().err
    assert "warning: chap (smoke): stored computed entry" in err and "is corrupted" in err
    assert "chap (smoke): stored computed entry" in (store / "events.log").read_text()
