"""Tests of ncutils.findings (verdict records, scoreboard) and ncutils.provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ncutils.book import findings, provenance

PARAMETERS = {"profile": "smoke", "seed": 3, "device": "cpu", "epochs": 2}


@pytest.fixture
def findings_path(tmp_path, monkeypatch):
    path = tmp_path / "findings.json"
    monkeypatch.setenv("NC_FINDINGS_FILE", str(path))
    monkeypatch.setenv("NC_NOTEBOOK", "chapter_x")
    monkeypatch.setenv("NC_GIT_COMMIT", "0123456789abcdef")
    monkeypatch.setenv("NC_GIT_DIRTY", "0")
    monkeypatch.delenv("NC_PARAMETERS", raising=False)
    return path


def test_registry_holds_the_thirteen_findings_of_the_five_papers():
    assert list(findings.FINDINGS) == [
        "P1", "P2", "P3", "P4", "R1", "R2", "Y1", "Y2", "K1", "K2", "G1", "G2", "G3",
    ]
    assert {finding.paper for finding in findings.FINDINGS.values()} == set(findings.PAPERS)


def test_record_writes_the_verdict_with_its_provenance(findings_path):
    entry = findings.record("P1", "depth vs log NC1", np.float64(-0.9), "Spearman <= -0.7", np.bool_(True),
                            {"per_arch": np.array([-0.9, -0.8])}, parameters=PARAMETERS)
    stored = json.loads(findings_path.read_text())["profiles"]["smoke"]["findings"]["P1"]
    assert stored == json.loads(json.dumps(entry))
    assert stored["value"] == -0.9 and stored["passed"] is True and stored["verdict"] == "reproduced"
    assert stored["details"] == {"per_arch": [-0.9, -0.8]}
    origin = stored["provenance"]
    assert (origin["profile"], origin["seed"], origin["device"]) == ("smoke", 3, "cpu")
    assert origin["parameters"] == PARAMETERS
    assert (origin["git_commit"], origin["git_dirty"], origin["notebook"]) == ("0123456789abcdef", False, "chapter_x")


def test_record_replaces_the_same_finding_and_keeps_profiles_apart(findings_path):
    findings.record("P2", "claim", 0.1, "criterion", True, parameters=PARAMETERS)
    findings.record("P2", "claim", 0.7, "criterion", False, parameters=PARAMETERS)
    findings.record("P2", "claim", 0.2, "criterion", True, parameters={**PARAMETERS, "profile": "cpu"})
    profiles = findings.load(findings_path)["profiles"]
    assert profiles["smoke"]["findings"]["P2"]["value"] == 0.7
    assert profiles["smoke"]["findings"]["P2"]["verdict"] == "not reproduced"
    assert profiles["cpu"]["findings"]["P2"]["value"] == 0.2


def test_record_takes_parameters_from_the_build_environment(findings_path, monkeypatch):
    monkeypatch.setenv("NC_PARAMETERS", json.dumps({"profile": "gpu", "seed": 1, "device": "cpu"}))
    entry = findings.record("K1", "claim", 1, "criterion", True)
    assert entry["provenance"]["profile"] == "gpu"
    assert "gpu" in findings.load(findings_path)["profiles"]


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (("Z9", "claim", 1.0, "criterion", True), KeyError, "unknown finding 'Z9'"),
        (("P1", "", 1.0, "criterion", True), ValueError, "claim"),
        (("P1", "claim", 1.0, "  ", True), ValueError, "criterion"),
        (("P1", "claim", 1.0, "criterion", "yes"), ValueError, "passed must be a bool"),
        (("P1", "claim", object(), "criterion", True), ValueError, "value"),
    ],
)
def test_record_rejects_bad_input_before_writing(findings_path, arguments, error, message):
    with pytest.raises(error, match=message):
        findings.record(*arguments, parameters=PARAMETERS)
    assert not findings_path.exists()


def test_checks_are_kept_apart_from_paper_findings(findings_path):
    entry = findings.check("etf_exact", "ETF known values", 1e-16, "at most 1e-10", True, parameters=PARAMETERS)
    assert entry["verdict"] == "passed" and entry["id"] == "chapter_x.etf_exact"
    sections = findings.load(findings_path)["profiles"]["smoke"]
    assert sections["findings"] == {} and list(sections["checks"]) == ["chapter_x.etf_exact"]
    with pytest.raises(ValueError, match="paper finding"):
        findings.check("P1", "not a check", 0.0, "criterion", True, parameters=PARAMETERS)
    with pytest.raises(ValueError, match="check id"):
        findings.check("bad id!", "description", 0.0, "criterion", True, parameters=PARAMETERS)


def test_glued_verdict_pastes_as_plain_text():
    verdict = findings.Verdict("not reproduced")
    assert repr(verdict) == "not reproduced"
    assert verdict._repr_markdown_() == "**not reproduced**"


def test_load_rejects_a_file_that_is_not_a_findings_file(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"something": 1}))
    with pytest.raises(ValueError, match="not a findings file"):
        findings.load(path)
    assert findings.load(tmp_path / "missing.json") == {"schema": findings.SCHEMA, "profiles": {}}


def _entry(identifier, passed, value, notebook="chapter_x", profile="cpu"):
    return {
        "id": identifier, "kind": "finding", "claim": "tested", "value": value, "criterion": "c",
        "passed": passed, "verdict": "reproduced" if passed else "not reproduced", "details": {},
        "provenance": {"profile": profile, "notebook": notebook, "seed": 0, "device": "cpu",
                       "git_commit": "abcdef0123", "git_dirty": False, "parameters": {}},
    }


def _row(markdown, finding_id):
    return next(line for line in markdown.splitlines() if line.startswith(f"| {finding_id} |"))


def test_scoreboard_shows_every_finding_and_never_passes_unrun_ones():
    content = {"schema": 1, "profiles": {"cpu": {"findings": {"P1": _entry("P1", True, 0.5),
                                                              "R2": _entry("R2", False, 0.25)},
                                                 "checks": {"chapter_x.etf": {**_entry("chapter_x.etf", True, 0.0),
                                                                              "kind": "check", "verdict": "passed"}}}}}
    board = findings.scoreboard_markdown(content, ["smoke", "cpu"], outdated={"cpu": ["chapter_x"]})
    for finding_id in findings.FINDINGS:
        assert f"| {finding_id} |" in board
    assert _row(board, "G3").count("not yet run") == 2 and "reproduced" not in _row(board, "G3")
    p1 = _row(board, "P1").split(" | ")
    assert p1[-2] == "not yet run" and "reproduced (0.5) — outdated" in p1[-1]
    assert "not reproduced (0.25)" in _row(board, "R2")
    assert "chapter_x.etf" in board.split("## Checks of the library")[1]
    assert "chapter_x.etf" not in board.split("## Every recorded verdict")[0]


def test_merge_lets_later_records_win():
    first = {"schema": 1, "profiles": {"cpu": {"findings": {"P1": _entry("P1", True, 1.0)}, "checks": {}}}}
    second = {"schema": 1, "profiles": {"cpu": {"findings": {"P1": _entry("P1", False, 2.0)}, "checks": {}},
                                        "gpu": {"findings": {"P3": _entry("P3", True, 3.0)}, "checks": {}}}}
    merged = findings.merge([first, second])
    assert merged["profiles"]["cpu"]["findings"]["P1"]["value"] == 2.0
    assert merged["profiles"]["gpu"]["findings"]["P3"]["value"] == 3.0


def test_provenance_caption_and_device(monkeypatch):
    monkeypatch.setenv("NC_GIT_COMMIT", "feedbeef00")
    monkeypatch.setenv("NC_GIT_DIRTY", "1")
    text = provenance.caption(PARAMETERS)
    assert text.startswith("profile smoke · seed 3 · cpu · commit feedbee+dirty")
    assert text.endswith("epochs=2")
    assert provenance.resolve_device("cpu") == "cpu"
    assert provenance.resolve_device("auto") in {"cpu", "cuda"}
    with pytest.raises(ValueError, match="device"):
        provenance.resolve_device(3)


def test_provenance_rejects_malformed_build_parameters(monkeypatch):
    monkeypatch.setenv("NC_PARAMETERS", "[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        provenance.current_parameters()


def test_environment_lists_package_versions():
    environment = provenance.environment()
    assert environment["packages"]["torch"] is not None
    assert set(environment["packages"]) == set(provenance.PACKAGES)
