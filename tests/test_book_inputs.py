"""What the book reads from its user: ``-p`` values, profile files, and the names of custom runs.

Different overrides never share an output file or a label; exponent notation is a float
(YAML 1.2); a profile file that repeats a key or is not UTF-8 is refused, naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ncutils.book import cli, execute, profiles

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_kernel(monkeypatch):
    """Record what papermill would have been given, starting nothing."""
    calls = []

    def fake_execute(root, chapter, injected, parameters, output, findings_path, *, git):
        calls.append({"injected": injected, "output": output, "findings": findings_path})
        return 0.0

    monkeypatch.setattr(execute, "execute", fake_execute)
    return calls


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("radius", [1.0, 1.0000001, 1, 1e-7, 1.00000001e-7]),
        ("data_dir", ["a b", "a_b", "a/b", "a:b", "10", "true", "", None]),
        ("datasets", [["digits", "mnist1d"], ["digits mnist1d"], "[digits,mnist1d]", "_digits_mnist1d_"]),
    ],
)
def test_different_overrides_never_share_a_file_or_a_label(name, values):
    stems = {execute.custom_stem("chapter", "cpu", {name: value}) for value in values}
    labels = {execute.custom_label("cpu", {name: value}) for value in values}
    assert len(stems) == len(labels) == len(values), (sorted(stems), sorted(labels))
    for stem in stems:
        assert re.fullmatch(r"[A-Za-z0-9_.=+-]+", stem), stem


def test_exact_values_are_spelled_out_and_lossy_ones_hashed():
    assert execute.custom_stem("c", "cpu", {"radius": 1.0000001}) == "c.cpu.radius=1.0000001"
    assert execute.custom_stem("c", "cpu", {"data_dir": "a_b"}) == "c.cpu.data_dir=a_b"
    assert re.fullmatch(r"c\.cpu\.data_dir=a_b\.h[0-9a-f]{10}", execute.custom_stem("c", "cpu", {"data_dir": "a b"}))
    assert execute.custom_label("cpu", {"radius": 1.0000001}) == "custom: radius=1.0000001 (from cpu)"
    assert execute.custom_label("cpu", {"data_dir": "a b"}) == "custom: data_dir='a b' (from cpu)"


def test_custom_runs_with_close_floats_or_similar_strings_write_their_own_notebooks(no_kernel):
    chapter = "kothapalli_terminal_phase"
    for value in ("1.0", "1.0000001"):
        execute.run_notebook(chapter, [("lr", value)], profile="smoke", root=REPO)
    for value in ("a b", "a_b", "a/b"):
        execute.run_notebook(chapter, [("data_dir", value)], profile="smoke", root=REPO)
    outputs = [call["output"] for call in no_kernel]
    assert len(set(outputs)) == len(outputs) == 5
    assert len({call["findings"] for call in no_kernel}) == 5
    assert len({call["injected"]["profile"] for call in no_kernel}) == 5
    assert no_kernel[1]["injected"]["profile"] == "custom: lr=1.0000001 (from smoke)"


def test_exponent_notation_is_a_float():
    assert profiles.parse_value("1e-3") == 0.001 and isinstance(profiles.parse_value("1e-3"), float)
    assert profiles.parse_value("5E+2") == 500.0 and profiles.parse_value("[1e-3, 2]") == [0.001, 2]
    assert profiles.parse_value("10") == 10 and isinstance(profiles.parse_value("10"), int)
    assert profiles.parse_value("e5") == "e5" and profiles.parse_value("1e") == "1e"
    values = cli.check_run("kothapalli_terminal_phase", [("lr", "1e-3")], profile="smoke", root=REPO)
    assert values["lr"] == 0.001


def _profile_root(tmp_path: Path, text: bytes) -> Path:
    (tmp_path / "notebooks" / "profiles").mkdir(parents=True)
    (tmp_path / "notebooks" / "profiles" / "smoke.yaml").write_bytes(text)
    return tmp_path


def test_a_profile_that_repeats_a_key_is_refused_naming_file_and_key(tmp_path):
    root = _profile_root(tmp_path, b"chap:\n  epochs: 3\n  lr: 0.1\n  epochs: 5\n")
    with pytest.raises(ValueError, match=r"smoke\.yaml: duplicate key 'epochs' at line 4 \(first at line 2\)"):
        profiles.load_profile(root, "smoke")
    (root / "notebooks" / "profiles" / "smoke.yaml").write_text("chap: {}\nother: {}\nchap: {epochs: 1}\n")
    with pytest.raises(ValueError, match="duplicate key 'chap' at line 3"):
        profiles.load_profile(root, "smoke")


def test_a_merge_key_may_still_be_overridden(tmp_path):
    root = _profile_root(tmp_path, b"a: &base\n  lr: 0.1\n  epochs: 3\nb:\n  <<: *base\n  epochs: 5\n")
    assert profiles.load_profile(root, "smoke") == {"a": {"lr": 0.1, "epochs": 3}, "b": {"lr": 0.1, "epochs": 5}}


def test_a_profile_that_is_not_utf8_is_refused_naming_the_file(tmp_path):
    root = _profile_root(tmp_path, "chap:\n  dataset: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"smoke\.yaml: not UTF-8 text \(byte 0xe9 at line 2\)"):
        profiles.load_profile(root, "smoke")


def test_a_parameter_value_that_repeats_a_key_is_refused(capsys):
    arguments = ["run", "parker_p1_depth", "--dry-run", "-p", "epochs", "{digits: 1, digits: 2}"]
    assert cli.main(arguments) == 2
    assert "-p epochs '{digits: 1, digits: 2}': duplicate key 'digits'" in capsys.readouterr().err
