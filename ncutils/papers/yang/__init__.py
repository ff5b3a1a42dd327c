"""Yang, Steinhardt, Hu (2023), chapters Y1-Y2: fine-grained structure survives collapse.

Four modules, all names re-exported here (``from ncutils.papers import yang``). *Configurations*
(:mod:`~ncutils.papers.yang.configs`): :func:`yang_config` (one run: cross-entropy, SGD with momentum
and a step decay), :func:`y1_grid` (networks trained on coarse labels, pairs of classes
merged, beside the same network trained on the fine labels: the reference, and on shuffled
coarse labels: a baseline; the coarse runs keep :func:`log_epochs` for a series across
training) and :func:`y2_grid` (the synthetic setting: Gaussian fine clusters nested in coarse
classes, at several fine separations and training lengths). *Recovery*
(:mod:`~ncutils.papers.yang.recovery`): :func:`measure` turns a trained
network into one table row per feature source (trained, initialisation, raw input) and label
set (true fine labels, fine labels drawn at random inside each coarse class: the null), with
:mod:`ncutils.cluster`; :func:`measure_run` / :func:`measure_runs` do the same for stored runs
through the results store (each k-means kept as a ``computed`` entry keyed by
:func:`recovery_payload`; the metrics are read from the statistics kept beside it, so an edit
to ``metrics.py`` clusters nothing again), and :func:`y1_epoch_series` /
:func:`epoch_series_facts` follow each coarse run across its stored epochs. *Criteria*
(:mod:`~ncutils.papers.yang.criteria`): :func:`y1_table` / :func:`y1_outcome` and :func:`y2_table` / :func:`y2_outcome`, pure
functions of those tables with every threshold an argument, fixed before the results; the runs
are combined by :func:`ncutils.verdicts.combine_runs` (reproduced when at least 2/3 of at least
2 eligible runs pass, not reproduced at most 1/3, inconclusive otherwise). Both findings were
amended on 2026-12-06 (the criteria are declared in :mod:`~ncutils.papers.yang.chapter`, the
earlier first): Y1 is judged over a learning-rate x weight-decay grid (:func:`y1_sweep_grid`),
:func:`y1_grid_points` / :func:`y1_grid_outcome` (reproduced when some grid point passes both
halves in every seed: the claim is existential), and Y2 by :func:`y2_stand_in_outcome`
(inconclusive: the paper's synthetic model is not available, the chapter's is a stand-in).
*Report*
(:mod:`~ncutils.papers.yang.report`): :func:`y1_facts` / :func:`y2_facts` (the numbers the
chapter's prose quotes) and :func:`y1_finding` / :func:`y2_finding` (each finding's record), with
:func:`y1_grid_facts`, :func:`y1_grid_display` and :func:`y1_original_result` (what the earlier
Y1 criterion gives on the same runs).

No official code exists, and only the paper's abstract could be read. Everything below that the
paper does not confirm is an *assumption* and :data:`ASSUMPTIONS` lists each one, for the chapter
to show.

References
----------
Yang, Steinhardt, Hu (2023), "Are Neurons Actually Collapsed? On the Fine-Grained Structure in
Neural Representations", ICML.
"""

from ncutils.papers.yang import configs, criteria, recovery, report
from ncutils.papers.yang.chapter import AMENDMENT_DATE, CHAPTER, Y1_CRITERIA, Y2_CRITERIA
from ncutils.papers.yang.configs import *  # noqa: F403
from ncutils.papers.yang.criteria import *  # noqa: F403
from ncutils.papers.yang.recovery import *  # noqa: F403
from ncutils.papers.yang.report import *  # noqa: F403

__all__ = sorted({*configs.__all__, *criteria.__all__, *recovery.__all__, *report.__all__, "AMENDMENT_DATE", "CHAPTER",
                  "Y1_CRITERIA", "Y2_CRITERIA"})
