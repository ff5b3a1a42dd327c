"""Garrod & Keating (2024), chapter G1-G3: the chapter's UFM settings and its pre-registered criteria.

Two halves. *Configurations*: :data:`PAPER_SETTINGS` (the paper's model sizes) and
:func:`chapter_configs` (the linear and the ReLU :class:`~ncutils.theory.ufm.UFMConfig` of the
chapter, with the analysed layers checked). *Judgements*: pure functions of what
:mod:`ncutils.theory.ufm` measures (a :class:`~ncutils.theory.ufm.LayerAnalysis`, the tables of
:func:`~ncutils.theory.ufm.layer_metrics`, :func:`~ncutils.theory.ufm.weight_gram_spectra` and
:func:`~ncutils.theory.ufm.kink_fractions`):

- :func:`g1_equal_outliers` -- Theorem 4.1: ``K^2`` separated, equal outliers with eigenvectors
  ``mu_c^(l+1) kron mu_c'^(l)``;
- :func:`g2_gradient_alignment` -- Theorem 4.3: squared gradient coefficients ``1/K`` on the
  diagonal, ``0`` off it;
- :func:`g3_unequal_outliers` -- the ReLU claim: outliers still separated, no longer equal;
- :func:`deep_nc_check` and :func:`kink_check` -- which kind of solution a run reached, and
  whether its gradient norm can be read as a convergence measure;
- :func:`select_g3_solutions` -- the ruling for G3 over several seeds: which of the
  solutions reached the claim is tested on;
- :func:`g3_verdict` -- the amended G3 (2026-12-01): the criterion on the selected converged
  solutions, ``inconclusive`` with the gradient norms when none converged;
- :func:`g3_eligible_verdict` -- G3 as amended on 2026-12-06: only solutions that fit all ``K``
  classes (:func:`fitted_classes`, weight ranks) and whose loss has stopped moving
  (:func:`loss_convergence`, a rule a kinked loss can meet) are tested;
- :func:`g1_reason`, :func:`g2_reason` -- the one-sentence reasons of G1 and G2's records.

Every threshold is an argument whose default is the value the chapter states in its
pre-registered criteria (the notebook passes them explicitly); nothing here is tuned to a
result, and nothing trains or plots.

References
----------
C. Garrod and J. P. Keating, "Unifying Low Dimensional Observations in Deep Learning Through
the Deep Linear Unconstrained Feature Model", arXiv:2404.06106 (2024), Theorems 4.1 and 4.3,
Section 5.
P. Súkeník, M. Mondelli and C. Lampert, "Neural Collapse versus Low-rank Bias: Is Deep Neural
Collapse Really Optimal?" (2024) -- deep-UFM solutions that are not deep NC.

Six modules, every name re-exported here (``from ncutils.papers import garrod``):
:mod:`~ncutils.papers.garrod.configs`, :mod:`~ncutils.papers.garrod.criteria`,
:mod:`~ncutils.papers.garrod.solutions`, :mod:`~ncutils.papers.garrod.g3` (the amended G3),
:mod:`~ncutils.papers.garrod.report` and :mod:`~ncutils.papers.garrod.chapter`.
"""

from ncutils.papers.garrod.configs import *  # noqa: F401,F403
from ncutils.papers.garrod.criteria import *  # noqa: F401,F403
from ncutils.papers.garrod.solutions import *  # noqa: F401,F403
from ncutils.papers.garrod.g3 import *  # noqa: F401,F403
from ncutils.papers.garrod.report import *  # noqa: F401,F403
from ncutils.papers.garrod.chapter import *  # noqa: F401,F403
from ncutils.papers.garrod import chapter, configs, criteria, g3, report, solutions

__all__ = sorted({*configs.__all__, *criteria.__all__, *solutions.__all__, *g3.__all__, *report.__all__, *chapter.__all__})
