"""Tests of ncutils.verdicts: the four states and the several-runs rule of book/method.md."""

from __future__ import annotations

import numpy as np
import pytest

from ncutils import verdicts
from ncutils.verdicts import INCONCLUSIVE, NO_CHAPTER, NOT_REPRODUCED, REPRODUCED, Outcome, combine_runs


def test_the_four_states_are_named_as_the_scoreboard_shows_them():
    assert verdicts.STATES == ("reproduced", "not reproduced", "inconclusive", "no chapter yet")
    assert NO_CHAPTER not in verdicts.RECORDABLE


@pytest.mark.parametrize(
    ("passed", "state", "reason"),
    [
        ([], INCONCLUSIVE, "no eligible run (at least 2 needed)"),
        ([True], INCONCLUSIVE, "only 1 eligible run (at least 2 needed)"),
        ([False], INCONCLUSIVE, "only 1 eligible run (at least 2 needed)"),
        ([True, True], REPRODUCED, "2 of 2 eligible runs pass"),
        ([True, False], INCONCLUSIVE, "mixed: 1 of 2"),
        ([False, False], NOT_REPRODUCED, "0 of 2 eligible runs pass"),
        ([True, True, False], REPRODUCED, "2 of 3 eligible runs pass"),  # exactly 2/3
        ([True, False, False], NOT_REPRODUCED, "1 of 3 eligible runs pass"),  # exactly 1/3
        ([True] * 4 + [False] * 2, REPRODUCED, "4 of 6 eligible runs pass"),  # 2/3 again, no rounding
        ([True] * 3 + [False] * 2, INCONCLUSIVE, "mixed: 3 of 5"),  # 0.6 < 2/3
        ([True] * 2 + [False] * 3, INCONCLUSIVE, "mixed: 2 of 5"),  # 0.4 > 1/3
        ([True] * 2 + [False] * 4, NOT_REPRODUCED, "2 of 6 eligible runs pass"),
    ],
)
def test_two_thirds_rule(passed, state, reason):
    outcome = combine_runs(passed)
    assert (outcome.state, outcome.reason) == (state, reason)
    assert (outcome.passed_runs, outcome.eligible_runs) == (sum(passed), len(passed))
    assert "2/3" in outcome.threshold and "1/3" in outcome.threshold


def test_margin_is_how_far_the_pass_fraction_clears_the_threshold():
    assert combine_runs([True, True, False]).margin == pytest.approx(0.0)
    assert combine_runs([True, True, True]).margin == pytest.approx(1 / 3)
    assert combine_runs([False, False, False]).margin == pytest.approx(1 / 3)
    assert combine_runs([True, False, False]).margin == pytest.approx(0.0)
    assert combine_runs([True, False]).margin is None
    assert combine_runs([True]).margin is None


def test_every_claim_needs_every_run():
    assert combine_runs([True, True, True], every=True).state == REPRODUCED
    refuted = combine_runs([True, True, True, True, True, False], every=True)
    assert refuted.state == NOT_REPRODUCED and refuted.margin == pytest.approx(1 / 6)
    assert combine_runs([True], every=True).state == INCONCLUSIVE  # one run is still too few
    assert "all of at least 2" in refuted.threshold


def test_min_runs_and_numpy_bools():
    assert combine_runs(np.array([True, True, False]), min_runs=4).reason == "only 3 eligible runs (at least 4 needed)"
    assert combine_runs([np.bool_(True), np.bool_(True)]).state == REPRODUCED
    with pytest.raises(ValueError, match="min_runs"):
        combine_runs([True, True], min_runs=0)
    with pytest.raises(ValueError, match=r"passed\[1\] must be a bool"):
        combine_runs([True, 1])


def test_outcome_passed_flag_and_description():
    assert Outcome(REPRODUCED).passed is True
    assert Outcome(NOT_REPRODUCED).passed is False
    assert verdicts.inconclusive("did not converge").passed is None
    assert combine_runs([True, False]).describe().startswith("inconclusive: mixed: 1 of 2 (reproduced if")
    assert verdicts.passed_state(False) == NOT_REPRODUCED


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((INCONCLUSIVE,), "needs a reason"),
        (("maybe",), "unknown verdict state 'maybe'"),
        ((NO_CHAPTER,), "shows 'no chapter yet' by itself"),
        ((REPRODUCED, "  "), "non-empty"),
        ((REPRODUCED, None, 3, 2), "between 0 and eligible_runs"),
        ((REPRODUCED, None, 1, None), "both passed_runs and eligible_runs"),
    ],
)
def test_outcome_rejects_what_cannot_be_a_verdict(arguments, message):
    with pytest.raises(ValueError, match=message):
        Outcome(*arguments)


def test_inconclusive_needs_a_reason():
    with pytest.raises(ValueError, match="non-empty"):
        verdicts.inconclusive("")
    with pytest.raises(ValueError, match="non-empty"):
        verdicts.inconclusive(None)
    outcome = verdicts.inconclusive("  too few layers  ", passed_runs=0, eligible_runs=0)
    assert outcome.reason == "too few layers" and outcome.eligible_runs == 0
