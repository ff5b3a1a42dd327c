"""Tests of ncutils.store.code: every stored result's key follows the code it runs, and only it.

Each computation's code is derived from its entry modules' imports (ncutils.store.code). Here
a module is edited in a temporary copy of the package, which the keys then read: every module
a key must follow changes it, a module it must not follow (the metrics for a trained run, the
book floor for all) leaves it alone. An import added inside a function is followed too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ncutils.papers import kothapalli
from ncutils.papers.yang import recovery
from ncutils.store import code as store_code
from ncutils.store import keys
from ncutils.theory.ufm import _store as ufm_store

from conftest import tiny_config

OPTIONS = {"conv_policy": "flatten"}
K2_SETTINGS = {"network": "mlp", "dataset": "digits", "classes": [0, 1], "label_noise": 0.0}


@pytest.fixture(scope="module")
def _copy(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("package") / "ncutils"
    shutil.copytree(store_code.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


@pytest.fixture
def package(_copy, monkeypatch) -> Path:
    """A copy of the package's sources, which the keys read instead of the package; the
    files a test edits are restored after it."""
    originals = {path: path.read_bytes() for path in _copy.rglob("*.py")}
    monkeypatch.setattr(store_code, "PACKAGE_DIR", _copy)
    yield _copy
    for path, data in originals.items():
        if path.read_bytes() != data:
            path.write_bytes(data)


def _edit(package: Path, module: str, old: str | None = None, new: str = "") -> None:
    """Change the code of ``module`` (dotted, without ``ncutils.``): replace ``old`` or append."""
    path = package.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    text = path.read_text()
    if old is None:
        text += "\n_EDITED_FOR_A_TEST = 1\n"
    else:
        assert old in text, f"{old!r} is not in {path}"
        text = text.replace(old, new, 1)
    path.write_text(text)


def _k2_key() -> str:
    return keys.digest(keys.computed_payload("lesde-trials", K2_SETTINGS, computation=kothapalli.K2_TRIALS,
                                             architectures=["mlp"], datasets=["digits"]))


def _recovery_key() -> str:
    return keys.digest(keys.computed_payload("yang-recovery", {}, computation=recovery.RECOVERY))


def _ufm_key(computation) -> str:
    return keys.digest(keys.computed_payload("ufm", {}, computation=computation))


KEYS = {
    "trained": lambda: keys.trained_key(tiny_config()),
    "tracked": lambda: keys.trained_key(tiny_config(track_last_layer=True)),
    "statistics": lambda: keys.statistics_key("0123456789abcdef", 3, "ab" * 32, OPTIONS),
    "measured": lambda: keys.measurement_key("0123456789abcdef", 3, "ab" * 32, OPTIONS),
    "k2": _k2_key,
    "yang": _recovery_key,
    "ufm-run": lambda: _ufm_key(ufm_store.RUN),
    "ufm-analysis": lambda: _ufm_key(ufm_store.ANALYSIS),
}
#: What each key must follow ...
FOLLOWS = {
    "trained": ["train", "data", "_checks"],
    "tracked": ["train", "data", "_checks", "layer_stats", "stats", "probe"],
    "statistics": ["layer_stats", "stats", "probe", "_checks"],
    "measured": ["measure", "sweep", "metrics", "_alignment", "series", "layer_stats", "stats", "probe"],
    "k2": ["theory.lesde", "papers.kothapalli.k2", "data", "_checks", "stats"],
    "yang": ["papers.yang.recovery", "cluster", "probe", "stats", "data", "_checks"],
    "ufm-run": ["theory.ufm.training", "theory.ufm.model", "theory.ufm.spectra", "stats", "_checks"],
    "ufm-analysis": ["theory.ufm.spectra", "theory.ufm.model", "stats"],
}
#: ... and what it must not: the metrics for what stores no metric, the models (keyed by
#: architecture version), the store itself (STORE_FORMAT), the grid runner, the book floor.
IGNORES = {
    "trained": ["metrics", "sweep", "series", "layer_stats", "stats", "probe", "measure", "grid", "models",
                "store.files", "store.keys", "runs", "runs_cli", "book.provenance", "_provenance"],
    "tracked": ["metrics", "sweep", "series", "measure", "models", "book.provenance"],
    "statistics": ["metrics", "_alignment", "sweep", "train", "data", "book.provenance"],
    "measured": ["train", "data", "models", "grid", "book.provenance"],
    "k2": ["metrics", "sweep", "measure", "grid", "cluster", "models", "theory.ufm.training",
           "papers.yang.recovery", "book.provenance", "book.findings"],
    "yang": ["metrics", "measure", "grid", "models", "papers.kothapalli.k2", "book.provenance"],
    "ufm-run": ["metrics", "train", "data", "theory.lesde", "book.provenance"],
    "ufm-analysis": ["metrics", "theory.ufm.training", "book.provenance"],
}


@pytest.mark.parametrize("kind,module", [(kind, module) for kind, modules in FOLLOWS.items() for module in modules])
def test_a_key_follows_every_module_its_computation_runs(package, kind, module):
    base = KEYS[kind]()
    _edit(package, module)
    assert KEYS[kind]() != base, f"the {kind} key ignores an edit to {module}"


@pytest.mark.parametrize("kind,module", [(kind, module) for kind, modules in IGNORES.items() for module in modules])
def test_a_key_ignores_modules_its_computation_does_not_run(package, kind, module):
    base = KEYS[kind]()
    _edit(package, module)
    assert KEYS[kind]() == base, f"the {kind} key follows an edit to {module}"


def test_k2_follows_the_relabelling_of_k2_data(package):
    base = _k2_key()
    _edit(package, "papers.kothapalli.k2", "remap = {int(c): i for i, c in enumerate(classes)}",
          "remap = {int(c): len(classes) - 1 - i for i, c in enumerate(classes)}")
    assert _k2_key() != base


def test_an_import_added_inside_a_function_is_followed(package):
    assert "ncutils.cluster" not in kothapalli.K2_TRIALS.modules()
    _edit(package, "papers.kothapalli.k2", '    remap = {int(c): i for i, c in enumerate(classes)}',
          '    from ncutils import cluster  # noqa: F401\n    remap = {int(c): i for i, c in enumerate(classes)}')
    assert "ncutils.cluster" in kothapalli.K2_TRIALS.modules()
    base = _k2_key()
    _edit(package, "cluster")
    assert _k2_key() != base


def test_a_docstring_edit_changes_no_key(package):
    before = {kind: key() for kind, key in KEYS.items()}
    _edit(package, "train", '"""TrainConfig and the training loop', '"""Edited: TrainConfig and the training loop')
    _edit(package, "theory.lesde", "from ncutils.stats import DEFAULT_RCOND",
          "from ncutils.stats import DEFAULT_RCOND  # an edited comment")
    assert {kind: key() for kind, key in KEYS.items()} == before


def test_no_stored_result_follows_the_book_or_the_papers_it_does_not_run():
    computations = [keys.TRAINING, keys.TRACKED_SERIES, keys.STATISTICS, keys.MEASUREMENT, kothapalli.K2_TRIALS,
                    recovery.RECOVERY, ufm_store.RUN, ufm_store.ANALYSIS]
    for computation in computations:
        modules = computation.modules()
        assert not [m for m in modules if m.startswith(("ncutils.book", "ncutils.runs"))], computation.name
        assert not [m for m in modules if m.startswith("ncutils.store")], computation.name
    assert not [m for m in keys.TRAINING.modules() if m.startswith(("ncutils.papers", "ncutils.theory"))]


def test_type_checking_imports_and_relative_imports(tmp_path, monkeypatch):
    package = tmp_path / "ncutils"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ncutils import b\n"
                                  "else:\n    from ncutils import c\n")
    (package / "b.py").write_text("")
    (package / "c.py").write_text("def f():\n    from .sub import d\n")
    (package / "sub" / "d.py").write_text("from . import e\nfrom .. import f as _f\n")
    (package / "sub" / "e.py").write_text("")
    (package / "f.py").write_text("")
    monkeypatch.setattr(store_code, "PACKAGE_DIR", package)
    assert store_code.Computation("demo", ("ncutils.a",)).modules() == (
        "ncutils.a", "ncutils.c", "ncutils.f", "ncutils.sub.d", "ncutils.sub.e")  # b: never runs
    with pytest.raises(ValueError, match="not modules"):
        store_code.Computation("demo", ("ncutils.missing",))
