"""Parker, Onal, Stengel, Intrater (2023), chapters P1-P4: settings and pre-registered criteria.

``from ncutils.papers import parker`` gives one namespace: the configurations
(:mod:`~ncutils.papers.parker.configs`), the criteria as first pre-registered
(:mod:`~ncutils.papers.parker.criteria`) and the amended criteria of 2026-12-01
(:mod:`~ncutils.papers.parker.amended`), those amended on 2026-12-06 with the reasons of the
verdicts (:mod:`~ncutils.papers.parker.decisions`), and the four chapters' declarations
(:mod:`~ncutils.papers.parker.chapters`: ``parker.P1`` ... ``parker.P4``).

References
----------
Parker, Onal, Stengel, Intrater (2023), "Neural Collapse in the Intermediate Hidden Layers of
Classification Neural Networks", arXiv:2308.02760.
"""

from ncutils.papers.parker.amended import *  # noqa: F401,F403
from ncutils.papers.parker.amended import __all__ as _amended
from ncutils.papers.parker.chapters import BUDGET, GRID_DEFAULTS, P1, P2, P3, P4  # noqa: F401
from ncutils.papers.parker.decisions import *  # noqa: F401,F403
from ncutils.papers.parker.decisions import __all__ as _decisions
from ncutils.papers.parker.configs import *  # noqa: F401,F403
from ncutils.papers.parker.configs import __all__ as _configs
from ncutils.papers.parker.criteria import *  # noqa: F401,F403
from ncutils.papers.parker.criteria import __all__ as _criteria

__all__ = [*_configs, *_criteria, *_amended, *_decisions, "BUDGET", "GRID_DEFAULTS", "P1", "P2", "P3", "P4"]
