"""Rangamani, Lindegaard, Galanti, Poggio (ICML 2023), chapters R1-R2: settings and criteria.

The settings are those of the official code (``mariuslindegaard/Intermediate_Neural_Collapse``,
branch ICML2023): MSE on one-hot targets, SGD with momentum
0.9, batch 128, one linear warm-up epoch, multi-step decay at ``i * epochs // steps``,
350 epochs, weights kept at :data:`CHECKPOINT_EPOCHS`; ``mlp_large`` and ``convnet_deep``
(:func:`ncutils.models.build_model` ``"rangamani_mlp"``, ``"rangamani_convnet"``) with lr
0.01 and weight decay 5e-4 / 2e-3, lr decay 0.1 in 3 steps; ResNet-18 with the "papyan"
grid's rates (decay 0.1 in 2 steps).

The criteria are pure functions of layer-sweep tables (:func:`ncutils.sweep.layer_sweep`
columns, one run) and return a dict with ``passed``; :func:`verdict` combines runs
(:func:`ncutils.verdicts.combine_runs`: reproduced when at least 2/3 of at least 2 evaluable
runs pass, not reproduced at most 1/3, inconclusive otherwise). The chapter's loop over its
runs lives here too: :func:`runs_table` (eligibility), :func:`stored_measurements` (what is
read from the results store: nothing is trained), :func:`judge_run` / :func:`judge_runs`
(R1, R2 and their nulls) and the texts of its verdicts (:func:`verdict_facts`,
:func:`r1_finding`, :func:`r2_finding`).

Five modules, every name re-exported here (``from ncutils.papers import rangamani``):
:mod:`~ncutils.papers.rangamani.configs` (settings, grid, parameter checks),
:mod:`~ncutils.papers.rangamani.criteria` (R1, R2), :mod:`~ncutils.papers.rangamani.judging`
(the chapter's runs, read from the store and judged), :mod:`~ncutils.papers.rangamani.report`
(the verdicts' texts and records) and :mod:`~ncutils.papers.rangamani.chapter` (the declaration).

References
----------
Rangamani, Lindegaard, Galanti, Poggio (2023), "Feature Learning in Deep Classifiers through
Intermediate Neural Collapse", ICML, PMLR 202.
"""

from ncutils.papers.rangamani.configs import *  # noqa: F401,F403
from ncutils.papers.rangamani.criteria import *  # noqa: F401,F403
from ncutils.papers.rangamani.judging import *  # noqa: F401,F403
from ncutils.papers.rangamani.report import *  # noqa: F401,F403
from ncutils.papers.rangamani.chapter import *  # noqa: F401,F403
from ncutils.papers.rangamani import chapter, configs, criteria, judging, report

__all__ = sorted({*configs.__all__, *criteria.__all__, *judging.__all__, *report.__all__, *chapter.__all__})
