"""Early parameter errors (issue 16): each paper module checks a chapter's parameters, and the
book refuses bad values before papermill starts; custom runs are named by their overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ncutils.book import chapters, cli, execute, profiles
from ncutils.papers import kothapalli, rangamani, yang
from ncutils.papers.parker import configs as parker

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_kernel(monkeypatch):
    """Fail the test if papermill would start; record what it would have been given."""
    calls = []

    def fake_execute(root, chapter, injected, parameters, output, findings_path, *, git):
        calls.append({"chapter": chapter.stem, "injected": injected, "parameters": parameters,
                      "output": output, "findings": findings_path})
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("{}")
        return 0.0

    monkeypatch.setattr(execute, "execute", fake_execute)
    return calls


def _chapter(stem: str) -> profiles.Notebook:
    return profiles.chapters(REPO)[stem]


def _parameters(stem: str, profile: str = "cpu", **overrides) -> dict:
    chapter = _chapter(stem)
    return {**chapter.defaults, **profiles.load_profile(REPO, profile)[stem], **overrides}


@pytest.mark.parametrize("profile", profiles.PROFILES)
@pytest.mark.parametrize("stem", sorted(chapter.stem for chapter in chapters.CHAPTERS))
def test_every_profile_passes_its_paper_module_validator(stem, profile):
    assert profiles.chapter_problems(_chapter(stem), _parameters(stem, profile), "x") == []


@pytest.mark.parametrize(
    ("stem", "overrides", "message"),
    [
        ("parker_p1_depth", {"datasets": ["digits", "mnist5k", "mnist1d", "fashionmnist"]},
         "epochs has no entry for dataset 'fashionmnist'"),
        ("parker_p2_variance", {"lr": -0.5}, "lr must be > 0, got -0.5"),
        ("parker_p2_variance", {"datasets": ["digits", "no_such_data"]}, "unknown ['no_such_data']"),
        ("parker_p1_depth", {"activations": ["relu", "swish"]}, "unknown ['swish']"),
        ("parker_p3_angles", {"seeds": [0, 0]}, "seeds repeat"),
        ("parker_p3_angles", {"architectures": {"mlp": {"depth": 3, "colour": 1}}}, "colour"),
        ("rangamani_intermediate", {"epochs": 2.5}, "parameter 'epochs' should be like 150 (int), got 2.5"),
        ("rangamani_intermediate", {"architectures": {"mlp": {"arch": "rangamani_mlp", "datasets": ["digits"],
                                                                "lr": 0.0, "weight_decay": 0.0,
                                                                "lr_decay": 0.1, "decay_steps": 3}}},
         "lr must be > 0, got 0.0"),
        ("yang_fine_structure", {"datasets": ["digits", "fashionmnist"]},
         "Y1: epochs has no entry for dataset 'fashionmnist'"),
        ("yang_fine_structure", {"pairings": ["nonsense"]}, "unknown pairings ['nonsense']"),
        ("yang_fine_structure", {"y2_separated": [7.0]}, "y2_separated [7.0] are not in y2_separations"),
        ("kothapalli_terminal_phase", {"lr": 0}, "lr must be > 0, got 0"),
        ("kothapalli_terminal_phase", {"networks": ["mlp", "transformer"]}, "unknown K1 network 'transformer'"),
        ("kothapalli_lesde", {"label_noise": [0.0, 0.3]}, "label_noise must contain 0.0 and (K-1)/K"),
        ("kothapalli_lesde", {"networks": {"mlp": {"arch": "mlp", "colour": 2}}}, "network 'mlp'"),
    ],
)
def test_validators_name_the_problem(stem, overrides, message):
    problems = profiles.chapter_problems(_chapter(stem), _parameters(stem, **overrides), "-p")
    assert any(message in problem for problem in problems), problems


def test_validators_never_read_a_dataset(monkeypatch):
    import ncutils.data

    def refuse(*args, **kwargs):
        raise AssertionError("a validator loaded data")

    monkeypatch.setattr(ncutils.data, "load_dataset", refuse)
    monkeypatch.setattr(parker, "load_dataset", refuse)
    for stem in (chapter.stem for chapter in chapters.CHAPTERS):
        for profile in ("gpu", "paper"):  # torchvision data that is not on this machine
            assert profiles.chapter_problems(_chapter(stem), _parameters(stem, profile), "x") == []


def test_same_messages_as_the_grids():
    parameters = _parameters("parker_p1_depth", datasets=["digits", "fashionmnist"])
    with pytest.raises(KeyError) as raised:  # the grid reads the data first: only its epochs lookup here
        parker._epochs_for(parameters["epochs"], "fashionmnist")
    assert raised.value.args[0] in parker.validate_parameters(parameters)
    parameters = _parameters("yang_fine_structure", datasets=["digits", "fashionmnist"])
    with pytest.raises(KeyError) as raised:
        yang.y1_grid(parameters)
    assert "Y1: " + raised.value.args[0] in yang.validate_parameters(parameters)
    parameters = _parameters("kothapalli_terminal_phase", lr=-1.0)
    with pytest.raises(ValueError) as raised:
        kothapalli.k1_config("mlp", "digits", lr=-1.0)
    assert str(raised.value) in kothapalli.validate_k1_parameters(parameters)
    assert rangamani.validate_parameters(_parameters("rangamani_intermediate")) == []


@pytest.mark.parametrize("stem", ["parker_p1_depth", "yang_fine_structure"])
def test_one_epoch_count_for_every_dataset_is_accepted(stem, no_kernel):
    chapter = _chapter(stem)
    assert isinstance(chapter.defaults["epochs"], dict)
    assert profiles.parameter_problems(chapter, {"epochs": 10}, "-p") == []
    # the type rule still refuses what no paper module takes
    assert profiles.parameter_problems(chapter, {"epochs": "ten"}, "-p")
    assert profiles.parameter_problems(chapter, {"epochs": True}, "-p")
    execute.run_notebook(stem, [("epochs", "10")], profile="smoke", root=REPO)
    assert no_kernel[0]["parameters"]["epochs"] == 10
    # where the paper module does not say so, an int is not a dict
    assert profiles.parameter_problems(_chapter("rangamani_intermediate"), {"architectures": 3}, "-p")


def test_run_refuses_bad_values_before_the_kernel_starts(no_kernel, capsys):
    arguments = ["run", "parker_p1_depth", "-p", "datasets", "[digits, mnist5k, mnist1d, fashionmnist]"]
    assert cli.main(arguments) == 2
    assert "epochs has no entry for dataset 'fashionmnist'" in capsys.readouterr().err
    assert cli.main(["run", "kothapalli_terminal_phase", "-p", "lr", "-0.1"]) == 2
    assert "lr must be > 0, got -0.1" in capsys.readouterr().err
    assert no_kernel == []


def test_build_refuses_a_profile_the_paper_module_refuses(tmp_path):
    import shutil

    root = tmp_path / "repo"
    for folder in ("notebooks",):
        shutil.copytree(REPO / folder, root / folder)
    shutil.copy(REPO / "_toc.yml", root / "_toc.yml")
    (root / "ncutils").mkdir()
    (root / "ncutils" / "__init__.py").write_text("")
    smoke = root / "notebooks" / "profiles" / "smoke.yaml"
    text = smoke.read_text()
    assert "  lr: 0.1\n  seeds:" in text  # the Parker block's learning rate
    smoke.write_text(text.replace("  lr: 0.1\n  seeds:", "  lr: -0.1\n  seeds:", 1))
    with pytest.raises(ValueError, match=re.escape("notebooks/profiles/smoke.yaml: parker_p2_variance: lr must be > 0")):
        profiles.plan(root, "smoke")


def test_custom_runs_are_named_by_their_overrides_and_say_so(no_kernel):
    first = execute.run_notebook("measuring_collapse", [("dim", "32")], profile="smoke", root=REPO)
    second = execute.run_notebook("measuring_collapse", [("dim", "48"), ("seed", "1")], profile="smoke", root=REPO)
    plain = execute.run_notebook("measuring_collapse", [], profile="smoke", root=REPO)
    assert first.name == "measuring_collapse.smoke.dim=32.ipynb"
    assert second.name == "measuring_collapse.smoke.dim=48.seed=1.ipynb"
    assert plain.name == "measuring_collapse.smoke.ipynb"
    assert len({first, second, plain}) == 3
    assert no_kernel[0]["injected"]["profile"] == "custom: dim=32 (from smoke)"
    assert no_kernel[1]["injected"]["profile"] == "custom: dim=48, seed=1 (from smoke)"
    assert no_kernel[2]["injected"]["profile"] == "smoke"
    assert no_kernel[0]["findings"].name == "measuring_collapse.smoke.dim=32.findings.json"
    long = execute.custom_stem("measuring_collapse", "cpu", {"noise_levels": [0.001 * i for i in range(40)]})
    assert re.fullmatch(r"measuring_collapse\.cpu\.h[0-9a-f]{10}", long)
    for path in (first, second, plain):
        path.unlink()


def test_custom_provenance_is_recorded_as_custom():
    from ncutils.book import provenance

    record = provenance.collect({"profile": execute.custom_label("cpu", {"epochs": 10}), "seed": 0, "device": "cpu"})
    assert record["profile"] == "custom: epochs=10 (from cpu)"
    assert provenance.describe(record).startswith("custom: epochs=10 (from cpu) · seed 0")


def test_the_registry_the_notebooks_and_the_toc_list_the_same_chapters():
    registered = [chapter.stem for chapter in chapters.CHAPTERS]
    assert len(set(registered)) == len(registered)
    assert set(registered) == {path.stem for path in (REPO / "notebooks").glob("*.ipynb")}
    assert set(registered) == set(profiles.toc_chapters(REPO))
    for profile in profiles.PROFILES:
        assert set(profiles.load_profile(REPO, profile)) == set(registered), profile


def _code_strings(path: Path) -> set[str]:
    """The string constants of a module's code (docstrings and their examples left out)."""
    import ast

    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings}


def test_a_stem_is_named_in_ncutils_only_by_its_declaration():
    """A chapter's notebook stem is written once in code, in its declaration; the rest reads it."""
    modules = {path.relative_to(REPO).as_posix(): _code_strings(path) for path in (REPO / "ncutils").rglob("*.py")}
    for chapter in chapters.CHAPTERS:
        places = [name for name, strings in modules.items() if chapter.stem in strings]
        assert len(places) == 1 and "/papers/" in places[0], (chapter.stem, places)


def test_measuring_collapse_refuses_bad_values_before_the_kernel(no_kernel, capsys):
    assert cli.main(["run", "measuring_collapse", "-p", "timing_repeats", "0", "--dry-run"]) == 2
    assert "timing_repeats must be an integer >= 1, got 0" in capsys.readouterr().err
    assert cli.main(["run", "measuring_collapse", "-p", "noise_levels", "[]", "--dry-run"]) == 2
    assert "noise_levels must be a non-empty list" in capsys.readouterr().err
    assert cli.main(["run", "measuring_collapse", "-p", "dim", "-5", "--dry-run"]) == 2
    assert "dim must be an integer >= 1, got -5" in capsys.readouterr().err
    assert no_kernel == []
