"""Kothapalli (TMLR 2023), chapters K1-K2: settings and pre-registered criteria.

K1 (the terminal phase, after Papyan, Han, Donoho 2020): once training error is zero,
NC1, the ETF error and the self-duality of the last hidden layer fall, and the network's
decisions become the nearest-class-centre rule. K2 (the locally elastic SDE of Zhang,
Wang, Su 2021): features separate iff the same-class effect of a step beats the cross-class
one, alpha > beta. The criteria (declared as :class:`~ncutils.chapter.Criterion` objects) are
pure functions of history tables and estimates with their thresholds as arguments; this
module trains nothing (see :func:`ncutils.train.train` with ``track_last_layer=True``
and :func:`ncutils.theory.lesde.train_trials`).

References
----------
Kothapalli (2023), "Neural Collapse: A Review on Modelling Principles and Generalization", TMLR.
Papyan, Han, Donoho (2020), PNAS. Zhang, Wang, Su (2021), NeurIPS.

Three modules, every name re-exported here (``from ncutils.papers import kothapalli``):
:mod:`~ncutils.papers.kothapalli.k1` (the terminal phase), :mod:`~ncutils.papers.kothapalli.k2` (the
LE-SDE) and :mod:`~ncutils.papers.kothapalli.chapters` (the two chapters' declarations).
"""

from ncutils.papers.kothapalli.k1 import *  # noqa: F401,F403
from ncutils.papers.kothapalli.k2 import *  # noqa: F401,F403
from ncutils.papers.kothapalli.chapters import *  # noqa: F401,F403
from ncutils.papers.kothapalli import chapters, k1, k2

__all__ = sorted({*k1.__all__, *k2.__all__, *chapters.__all__})
