"""Tests of ncutils.book.findings (verdicts, amendments, scoreboard) and ncutils.book.provenance."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from ncutils import verdicts
from ncutils.book import cards, findings, provenance, scoreboard

REPO = Path(__file__).resolve().parent.parent

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
    assert (stored["reason"], stored["tested"], stored["runs"]) == (None, None, None)
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
        (("P1", "claim", 1.0, "criterion"), ValueError, "exactly one of passed"),
    ],
)
def test_record_rejects_bad_input_before_writing(findings_path, arguments, error, message):
    with pytest.raises(error, match=message):
        findings.record(*arguments, parameters=PARAMETERS)
    assert not findings_path.exists()


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"verdict": "probably"}, "unknown verdict state 'probably'"),
        ({"verdict": verdicts.NO_CHAPTER, "reason": "x"}, "unknown verdict state 'no chapter yet'"),
        ({"verdict": verdicts.INCONCLUSIVE}, "needs a reason"),
        ({"verdict": verdicts.INCONCLUSIVE, "reason": "  "}, "reason must be a non-empty string"),
        ({"verdict": verdicts.REPRODUCED, "passed": True}, "exactly one of passed"),
        ({"outcome": verdicts.combine_runs([True, True]), "passed": True}, "exactly one of passed"),
        ({"outcome": verdicts.combine_runs([True, True]), "reason": "mine"}, "carries its own reason"),
        ({"outcome": "reproduced"}, "must be a verdicts.Outcome"),
        ({"passed": True, "tested": ""}, "tested must be a non-empty string"),
    ],
)
def test_record_rejects_bad_states_before_writing(findings_path, keywords, message):
    with pytest.raises(ValueError, match=message):
        findings.record("P1", "claim", 1.0, "criterion", parameters=PARAMETERS, **keywords)
    assert not findings_path.exists()


def test_record_stores_an_inconclusive_verdict_with_its_reason(findings_path, capsys):
    entry = findings.record("P4", "depth needed grows with difficulty", None, "Spearman >= 0.8",
                            verdict=verdicts.INCONCLUSIVE, reason="only 2 eligible datasets",
                            tested="MLP on digits and mnist1d", parameters=PARAMETERS)
    stored = findings.load(findings_path)["profiles"]["smoke"]["findings"]["P4"]
    assert stored == json.loads(json.dumps(entry))
    assert (stored["verdict"], stored["passed"], stored["reason"]) == ("inconclusive", None, "only 2 eligible datasets")
    assert stored["tested"] == "MLP on digits and mnist1d"
    card = cards.Card(stored)
    assert 'class="nc-verdict nc-inconclusive"' in card._repr_html_()
    assert "<em>Reason:</em> only 2 eligible datasets" in card._repr_html_()
    assert "<em>Tested:</em> MLP on digits and mnist1d" in card._repr_html_()
    assert "P4: inconclusive (only 2 eligible datasets)" in repr(card)


def test_record_takes_the_outcome_of_combined_runs(findings_path):
    entry = findings.record("P1", "NC1 falls with depth", -0.9, "Spearman <= -0.7 in each run",
                            outcome=verdicts.combine_runs([True, True, False]), parameters=PARAMETERS)
    assert (entry["verdict"], entry["passed"], entry["reason"]) == ("reproduced", True, "2 of 3 eligible runs pass")
    assert entry["runs"]["passed"] == 2 and entry["runs"]["eligible"] == 3 and entry["runs"]["margin"] == 0.0
    assert "<em>Runs:</em> 2 of 3 eligible runs pass" in cards.Card(entry)._repr_html_()
    mixed = findings.record("P1", "NC1 falls with depth", -0.5, "Spearman <= -0.7 in each run",
                            outcome=verdicts.combine_runs([True, False]), parameters=PARAMETERS)
    assert (mixed["verdict"], mixed["passed"], mixed["reason"]) == ("inconclusive", None, "mixed: 1 of 2")
    assert findings.record("P1", "c", 0.0, "c", verdict="not reproduced", parameters=PARAMETERS)["passed"] is False


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


def _entry(identifier, passed, value, notebook="chapter_x", profile="cpu", **fields):
    # records written before the verdict states existed have no reason, tested or runs: keep them that way
    return {
        "id": identifier, "kind": "finding", "claim": "tested", "value": value, "criterion": "c",
        "passed": passed, "verdict": "reproduced" if passed else "not reproduced", "details": {},
        "provenance": {"profile": profile, "notebook": notebook, "seed": 0, "device": "cpu",
                       "git_commit": "abcdef0123", "git_dirty": False, "parameters": {}},
        **fields,
    }


def _row(markdown, finding_id):
    """The table row of a finding: profile (or profile/kind for amended columns) -> what its cell shows."""
    row = re.search(rf'<tr data-id="{finding_id}">(.*?)</tr>', markdown).group(1)
    cells = {}
    for profile, kind, content in re.findall(r'<td data-profile="([^"]*)" data-kind="(\w+)" data-label="[^"]*">(.*?)</td>', row):
        def part(css_class):
            found = re.search(rf'<span class="{css_class}">(.*?)</span>', content)
            return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))) if found else None
        badge = re.search(r'<span class="nc-badge ([\w-]+)">([^<]+)</span>', content)
        key = profile if kind in ("verdict", "placeholder") else f"{profile}/{kind}"
        cells[key] = {"word": html.unescape(badge.group(2)) if badge else None, "css": badge.group(1) if badge else None,
                      "measured": part("nc-measured"), "criterion": part("nc-criterion"), "reason": part("nc-reason"),
                      "note": part("nc-badge-note"), "text": html.unescape(re.sub(r"<[^>]+>", "", content))}
    return cells


def _details(markdown, finding_id):
    """The lines under a finding's heading in "Criteria and tested claims"."""
    block = markdown.split(f"### {finding_id} · ", 1)[1]
    return block.split("\n(scoreboard-", 1)[0].split("\n## ", 1)[0]


def _line(details, label):
    return next(line for line in details.splitlines() if line.startswith(f"- *{label}*"))


def test_scoreboard_shows_every_finding_and_never_passes_unrun_ones():
    content = {"schema": 1, "profiles": {"cpu": {"findings": {"P1": _entry("P1", True, 0.5),
                                                              "R2": _entry("R2", False, 0.25)},
                                                 "checks": {"chapter_x.etf": {**_entry("chapter_x.etf", True, 0.0),
                                                                              "kind": "check", "verdict": "passed"}}}}}
    board = scoreboard.scoreboard_markdown(content, ["smoke", "cpu"], outdated={"cpu": ["chapter_x"]})
    matrix = board.split("## Criteria and tested claims")[0]
    assert "✅" not in board and "❌" not in board and "❔" not in board  # no emoji font needed
    assert ' title="' not in matrix  # nothing only on hover
    # smoke recorded nothing: one line, not a column of "not yet run"
    assert re.search(r'<p class="nc-not-run-line">Not run in this build: <strong>smoke</strong>\.', matrix)
    for finding_id in findings.FINDINGS:
        assert set(_row(matrix, finding_id)) == {"cpu"}
        assert f"### {finding_id} · " in board
    for finding_id in [f.id for f in findings.FINDINGS.values() if f.id not in ("P1", "R2")]:
        assert _row(matrix, finding_id)["cpu"]["word"] == scoreboard.placeholder(finding_id)
    p1 = _row(matrix, "P1")["cpu"]
    assert (p1["word"], p1["css"], p1["measured"], p1["criterion"], p1["note"]) == (
        "reproduced", "nc-pass", "0.5", "criterion: c", "outdated")
    r2 = _row(matrix, "R2")["cpu"]
    assert (r2["word"], r2["css"], r2["measured"]) == ("not reproduced", "nc-fail", "0.25")
    assert "cpu: **reproduced** (0.5) — outdated" in _line(_details(board, "P1"), "Verdicts")
    assert _line(_details(board, "P1"), "Verdicts").endswith("; not run: smoke")
    assert "chapter_x.etf" in board.split("## Checks of the library")[1]
    assert "chapter_x.etf" not in board.split("## Every recorded verdict")[0]


def test_scoreboard_sets_the_pre_registered_verdict_beside_the_amended_one():
    amendment = {"id": "P1", "date": "2026-12-01", "original": "Spearman <= -0.7 in every run",
                 "replacement": "r", "reason": "why", "original_result": "not reproduced: 1 of 3 runs",
                 "provenance": {}}
    content = {"schema": 1, "profiles": {"cpu": {"findings": {"P1": _entry("P1", True, -0.9), "P2": _entry("P2", False, 0.1)},
                                                 "checks": {}, "amendments": {"P1": [amendment]}}}}
    row = _row(scoreboard.scoreboard_markdown(content, ["cpu"]), "P1")
    assert row["cpu/original"]["word"] == "not reproduced" and row["cpu/original"]["measured"] == "1 of 3 runs"
    assert row["cpu/original"]["criterion"] == "criterion: Spearman ≤ -0.7 in every run"
    assert "amended 2026-12-01" in row["cpu/original"]["text"]
    assert row["cpu/amended"]["word"] == "reproduced" and row["cpu/amended"]["measured"] == "-0.9"
    p2 = _row(scoreboard.scoreboard_markdown(content, ["cpu"]), "P2")
    assert p2["cpu/original"]["word"] == "not reproduced" and p2["cpu/amended"]["text"] == "not amended"


def test_scoreboard_shows_the_scale_of_the_record_else_nothing():
    content = {"schema": 1, "profiles": {"cpu": {"findings": {
        "P1": _entry("P1", True, 0.5, scale="MLP width 64, 3 seeds", paper_setting="ResNet-18 on CIFAR-10"),
        "P2": _entry("P2", True, 0.5, scale={"epochs": 30, "seeds": 3})}, "checks": {}}}}
    board = scoreboard.scoreboard_markdown(content, ["cpu"])

    def scale(finding_id):
        cell = re.search(rf'<tr data-id="{finding_id}">.*?<td class="nc-scale" data-label="Scale">(.*?)</td>',
                         board).group(1)
        ours = re.search(r'<span class="nc-our-scale">(.*?)</span>', cell)
        return html.unescape(ours.group(1)) if ours else ""

    assert {finding_id: scale(finding_id) for finding_id in ("P1", "P2", "P3", "P4")} == {
        "P1": "MLP width 64, 3 seeds", "P2": "epochs 30, seeds 3", "P3": "", "P4": ""}
    assert '<span class="nc-paper-setting">paper: ResNet-18 on CIFAR-10</span>' in board  # what the paper ran, beside it
    assert "- *Scale*: MLP width 64, 3 seeds" in _details(board, "P1")


def test_introduction_table_shows_each_finding_with_its_verdict_number_reason_and_chapter():
    content = {"schema": 1, "profiles": {
        "smoke": {"findings": {"P1": _entry("P1", False, 0.1, profile="smoke")}, "checks": {}},
        "cpu": {"findings": {"P1": _entry("P1", True, -0.93, runs={"passed": 3, "eligible": 3, "threshold": "t",
                                                                   "margin": 0.3}),
                             "P4": _entry("P4", None, None, verdict="inconclusive", reason="only 2 eligible datasets")},
                "checks": {}}}}
    table = scoreboard.findings_markdown(content)
    assert table.startswith("Verdicts of the **cpu** profile")
    assert table.count("<tr data-id=") == len(findings.FINDINGS)
    p1 = re.search(r'<tr data-id="P1">(.*?)</tr>', table).group(1)
    assert '<span class="nc-badge nc-pass">reproduced</span><span class="nc-measured">-0.93</span>' in p1
    assert '<span class="nc-criterion">criterion: c</span>' in p1
    assert '<td class="nc-why" data-label="Why">3 of 3 eligible runs pass</td>' in p1
    assert '<a href="generated/parker_p1_depth.html">' in p1 and '<a href="scoreboard.html#scoreboard-p1">' in p1
    p4 = re.search(r'<tr data-id="P4">(.*?)</tr>', table).group(1)
    assert "inconclusive" in p4 and "only 2 eligible datasets" in p4
    k2 = re.search(r'<tr data-id="K2">(.*?)</tr>', table).group(1)
    assert "not yet run" in k2
    assert r'<span class="math notranslate nohighlight">\(\alpha &gt; \beta\)</span>' in k2  # TeX, not ASCII
    assert scoreboard.findings_markdown(content, "smoke").startswith("Verdicts of the **smoke** profile")
    assert scoreboard.findings_markdown({"schema": 1, "profiles": {}}).startswith("No verdict of the **cpu** profile")


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


def test_scoreboard_says_no_chapter_yet_for_every_finding_without_a_chapter():
    board = scoreboard.scoreboard_markdown({"schema": 1, "profiles": {}}, ["smoke", "cpu", "gpu", "paper"])
    assert "No profile has recorded a verdict yet" in board
    without = [finding.id for finding in findings.FINDINGS.values() if finding.chapter is None]
    for finding_id in findings.FINDINGS:
        words = [cell["word"] for cell in _row(board, finding_id).values()]
        expected = "no chapter yet" if finding_id in without else "not yet run"
        assert words == [expected]
        details = _details(board, finding_id)
        assert _line(details, "Tested claim").endswith(": —") and _line(details, "Criterion").endswith(": —")


def test_scoreboard_badges_have_a_style_for_every_state():
    css = (REPO / "book" / "_static" / "companion.css").read_text()
    for state, css_class in scoreboard.BADGE_CLASSES.items():
        assert f".nc-badge.{css_class} " in css, state
    assert "@media (max-width: 700px)" in css


def test_registry_chapters_are_the_notebooks_that_record_the_findings():
    recorded = {}
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        source = "\n".join(cell.source for cell in nbformat.read(str(path), as_version=4).cells)
        for finding_id in re.findall(r"findings\.record\(\s*[\"'](\w+)[\"']", source):
            recorded[finding_id] = path.stem
    assert recorded == {f.id: f.chapter for f in findings.FINDINGS.values() if f.chapter is not None}


def test_scoreboard_shows_the_tested_claim_and_inconclusive_reasons():
    inconclusive = _entry("P4", None, None, verdict="inconclusive", reason="only 2 eligible datasets",
                          tested="MLP on digits and mnist1d")
    runs = _entry("P1", True, -0.9, tested="MLP, seeds 0-2",
                  runs={"passed": 2, "eligible": 3, "threshold": "t", "margin": 0.0})
    content = {"schema": 1, "profiles": {
        "smoke": {"findings": {"P1": _entry("P1", True, -0.8, profile="smoke", tested="MLP, seed 0")}, "checks": {}},
        "cpu": {"findings": {"P4": inconclusive, "P1": runs}, "checks": {}},
    }}
    board = scoreboard.scoreboard_markdown(content, ["smoke", "cpu"])
    p4 = _details(board, "P4")
    assert _line(p4, "Tested claim") == "- *Tested claim*: MLP on digits and mnist1d"
    assert "cpu: **inconclusive**: only 2 eligible datasets" in _line(p4, "Verdicts")
    cell = _row(board, "P4")["cpu"]
    assert (cell["word"], cell["css"], cell["reason"]) == ("inconclusive", "nc-inconclusive", "only 2 eligible datasets")
    p1 = _details(board, "P1")
    assert _line(p1, "Tested claim") == "- *Tested claim*: smoke: MLP, seed 0; cpu: MLP, seeds 0-2"
    assert "cpu: **reproduced** (-0.9), 2 of 3 runs" in _line(p1, "Verdicts")
    assert _line(_details(board, "P2"), "Tested claim").endswith(": —")
    details = board.split("## Every recorded verdict")[1].split("## Checks of the library")[0]
    assert "| P4 | cpu | — | inconclusive: only 2 eligible datasets |" in details


def test_an_amendment_is_dated_shown_and_listed_on_the_scoreboard(findings_path):
    entry = findings.amendment("P1", "2026-12-01", "Spearman <= -0.7 over all layers",
                               "Spearman <= -0.7 over the hidden layers", "the input is not a hidden layer",
                               original_result="not reproduced: -0.62", parameters=PARAMETERS)
    card = cards.AmendmentCard(entry)._repr_html_()
    assert 'class="nc-amendment"' in card and "Amendment to P1, 2026-12-01" in card
    assert "<em>Pre-registered criterion:</em> Spearman ≤ -0.7 over all layers" in card
    assert "<em>Its result:</em> not reproduced: -0.62" in card and "<em>Reason:</em> the input" in card
    # the same amendment again replaces itself; a later one is listed after it
    findings.amendment("P1", "2026-12-01", "Spearman <= -0.7 over all layers", "Spearman <= -0.7 over the hidden "
                       "layers", "the input is not a hidden layer", parameters=PARAMETERS)
    findings.amendment("P1", "2026-12-03", "b", "c", "d", parameters=PARAMETERS)
    recorded = findings.record("P1", "claim", -0.9, "Spearman <= -0.7 over the hidden layers", True,
                               parameters=PARAMETERS)
    content = findings.load(findings_path)
    listed = content["profiles"]["smoke"]["amendments"]["P1"]
    assert [item["date"] for item in listed] == ["2026-12-01", "2026-12-03"]
    assert listed[0]["original_result"] is None and listed[0]["provenance"]["notebook"] == "chapter_x"
    assert "<em>Criterion amended:</em> 2026-12-01, 2026-12-03" in cards.Card(recorded, ["2026-12-01",
                                                                                       "2026-12-03"])._repr_html_()
    board = scoreboard.scoreboard_markdown(findings.merge([content]), ["smoke"])
    assert "| reproduced; amended 2026-12-01, 2026-12-03 |" in board


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (("Z9", "2026-12-01", "a", "b", "c"), KeyError, "unknown finding"),
        (("P1", "01/12/2026", "a", "b", "c"), ValueError, "ISO date"),
        (("P1", "20261201", "a", "b", "c"), ValueError, "ISO date"),
        (("P1", "2026-02-30", "a", "b", "c"), ValueError, "no such day"),
        (("P1", "2026-12-01", "", "b", "c"), ValueError, "original"),
        (("P1", "2026-12-01", "a", " ", "c"), ValueError, "replacement"),
        (("P1", "2026-12-01", "a", "b", None), ValueError, "reason"),
        (("P1", "2026-12-01", "a", "b", "c", ""), ValueError, "original_result"),
    ],
)
def test_amendment_rejects_bad_input_before_writing(findings_path, arguments, error, message):
    with pytest.raises(error, match=message):
        findings.amendment(*arguments, parameters=PARAMETERS)
    assert not findings_path.exists()


def test_merge_keeps_amendments_and_reads_files_without_them():
    old = {"schema": 1, "profiles": {"cpu": {"findings": {"P1": _entry("P1", True, 1.0)}, "checks": {}}}}
    new = {"schema": 1, "profiles": {"cpu": {"findings": {}, "checks": {},
                                             "amendments": {"P2": [{"date": "2026-12-01"}]}}}}
    merged = findings.merge([old, new])
    assert merged["profiles"]["cpu"]["amendments"] == {"P2": [{"date": "2026-12-01"}]}
    assert merged["profiles"]["cpu"]["findings"]["P1"]["value"] == 1.0


def test_one_value_formatter_for_captions_and_verdicts():
    assert provenance.format_value([0.123456789, 3, "relu"]) == "[0.123457,3,relu]"
    assert cards.format_value([0.123456789, float("nan")]) == "[0.1235, nan]"
    assert cards.format_value(None) == "—"


# --------------------------------------------------------------------------- provenance: git


def _git(folder: Path, *arguments: str) -> None:
    import subprocess

    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org",
                    "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *arguments],
                   cwd=folder, check=True, capture_output=True)


def _fake_project(folder: Path) -> Path:
    (folder / "ncutils").mkdir(parents=True)
    (folder / "ncutils" / "__init__.py").write_text("__version__ = '0'\n")
    (folder / "README.md").write_text("fake\n")
    return folder


@pytest.fixture
def no_build_git(monkeypatch, tmp_path):
    monkeypatch.delenv("NC_GIT_COMMIT", raising=False)
    monkeypatch.delenv("NC_GIT_DIRTY", raising=False)
    # git must not find a repository above the temporary folder.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))


def test_git_state_records_the_checkout_and_which_tracked_files_differ(tmp_path, no_build_git):
    project = _fake_project(tmp_path / "project")
    _git(project, "init", "-q")
    _git(project, "add", ".")
    _git(project, "commit", "-q", "-m", "fake")
    state = provenance.git_state(project)
    assert len(state["commit"]) == 40 and state["dirty"] is False and state["changed"] == []
    assert state["state"] == "clean"
    # Untracked files (logs, data, run stores) do not make a build dirty.
    (project / "build.log").write_text("log\n")
    (project / "runs").mkdir()
    (project / "runs" / "x.pt").write_bytes(b"0")
    assert provenance.git_state(project)["dirty"] is False
    (project / "ncutils" / "__init__.py").write_text("__version__ = '1'\n")
    (project / "README.md").unlink()
    state = provenance.git_state(project)
    assert state["dirty"] is True and state["state"] == "dirty"
    assert state["changed"] == ["README.md", "ncutils/__init__.py"]


def test_git_state_of_a_copy_inside_another_repository_records_no_commit(tmp_path, no_build_git):
    outer = tmp_path / "outer"
    outer.mkdir()
    (outer / "other.txt").write_text("another project\n")
    _git(outer, "init", "-q")
    _git(outer, "add", ".")
    _git(outer, "commit", "-q", "-m", "outer")
    copy = _fake_project(outer / "vendor" / "companion")
    assert provenance.git_state(copy) == {"commit": None, "dirty": None, "changed": None,
                                          "state": "not a git checkout"}
    # ... even once the copy's files are committed to the outer repository.
    _git(outer, "add", ".")
    _git(outer, "commit", "-q", "-m", "vendor the companion")
    assert provenance.git_state(copy)["commit"] is None


def test_git_state_outside_any_repository(tmp_path, no_build_git):
    plain = _fake_project(tmp_path / "plain")
    assert provenance.git_state(plain)["state"] == "not a git checkout"
    assert provenance.git_state(plain)["commit"] is None


def test_collect_keeps_its_keys_with_the_new_git_state(monkeypatch):
    monkeypatch.setenv("NC_GIT_COMMIT", "")
    record = provenance.collect(PARAMETERS)
    assert record["git_commit"] is None and record["git_dirty"] is None
    assert set(record) == {"profile", "parameters", "seed", "device", "device_name", "notebook",
                           "git_commit", "git_dirty", "ncutils_version", "recorded_at"}


def test_rendered_text_writes_math_as_tex_and_settings_dicts_as_text():
    assert cards.tex_text("lambda_{K^2} >= 10 when alpha_hat > beta") == (
        r"$\lambda_{K^2}$ ≥ 10 when $\hat{\alpha}$ > $\beta$")
    assert cards.tex_text("MLP {'depth': 3, 'width': 32} on digits") == "MLP (depth=3, width=32) on digits"
    assert cards.tex_text("already $x^2$, Nanjing, alphabet") == "already $x^2$, Nanjing, alphabet"
    card = cards.Card(_entry("K2", True, 0.5, tested="MLP {'depth': 3}", criterion="alpha > beta",
                                 provenance={"profile": "cpu", "notebook": "x", "seed": 0, "device": "cpu",
                                             "git_commit": None, "parameters": {"networks": {"mlp": {"depth": 3}}}}))
    page = card._repr_html_()
    assert r'<span class="math notranslate nohighlight">\(\alpha\)</span> &gt; ' in page
    assert "MLP (depth=3)" in page
    assert re.search(r'<details class="nc-provenance"><summary>Provenance</summary><p>profile cpu', page)
