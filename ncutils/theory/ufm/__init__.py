"""Deep (linear and ReLU) unconstrained feature models: optimum, layer Hessians, gradients.

The deep unconstrained feature model (UFM) of Garrod & Keating (2024) treats the
features entering the last ``L`` layers of a network as free parameters and
stacks ``L`` weight matrices on top of them.  With ``K`` classes of ``n`` samples each
(``N = K n``), free features ``H_1`` (``d x N``), weights ``W_1 ... W_{L-1}``
(``d x d``) and ``W_L`` (``K x d``) and one-hot targets ``Y = I_K kron 1_n^T``
the loss is

.. math::

    \\mathcal L = \\frac{1}{2Kn}\\lVert W_L \\cdots W_1 H_1 - Y\\rVert_F^2
        + \\sum_{l=1}^{L} \\frac{\\lambda_W}{2}\\lVert W_l\\rVert_F^2
        + \\frac{\\lambda_H}{2}\\lVert H_1\\rVert_F^2 .

The ReLU variant applies a ReLU after every ``W_l`` with ``l < L``.

Notation used throughout (the paper's): ``h^(l)`` are the features that *enter*
``W_l`` (``h^(1) = H_1``), ``h^(l+1) = W_l h^(l)`` (or its ReLU), and
``h^(L+1)`` is the output.  ``mu_c^(l)`` is the mean of class ``c`` at layer
``l`` (un-centred: the model has no bias, and at deep neural collapse the class
means form an *orthogonal* frame).  Layers are numbered ``1 .. L``.
``vec(W_l)`` is the row-major flattening (see :mod:`ncutils.theory.ufm.spectra`).

One concern per module, every public name re-exported here (a chapter needs
``from ncutils.theory import ufm`` only):

* :mod:`~ncutils.theory.ufm.model` -- :class:`UFMConfig`, :class:`UFMState`, the
  forward pass and the loss, and the theory of the optimum:
  :func:`regularisation_condition` (Garrod & Keating, Eq. 2: when the deep-NC
  configuration is the global optimum of the linear UFM), :func:`dnc_optimum`
  (the deep-NC optimum in closed form, one scalar problem, from which Theorem 4.4,
  ``W_l^T W_l`` of rank ``K``, and the outlier value of Theorem 4.1 follow) and
  :func:`dnc_state` (that point, built).
* :mod:`~ncutils.theory.ufm.training` -- :func:`train`: full-batch gradient descent
  with momentum (a hand-written backward pass, :func:`loss_and_gradient`), then L-BFGS,
  in float64, deterministic, with snapshots of the layer spectrum along the way
  (:func:`snapshot_schedule`) and a checkpoint to resume a long run from
  (:func:`checkpoint_path`); :func:`train_many`, several runs in worker processes.
  With ``store=True`` (here and in :func:`analyse_layer`) a result is kept in the results
  store and loaded when its settings and the code that decides it are unchanged
  (:func:`run_payload`; the keys are those of :mod:`~ncutils.theory.ufm._store`).
* :mod:`~ncutils.theory.ufm.spectra` -- :func:`layer_hessian` / :func:`layer_hvp`,
  the exact Hessian of the loss with respect to one ``W_l`` by autograd (Theorem
  4.1: ``K^2`` equal outliers with eigenvectors ``mu_c^(l+1) kron mu_c'^(l)``),
  :func:`eigenvector_alignment`; :func:`gauss_newton_split`, the within-class,
  cross-class and class parts of the Gauss-Newton matrix (Theorem 4.2: ranks
  ``0``, ``K(K-1)``, ``K``); :func:`gradient_coefficients`, the data gradient on
  the normalised basis ``mu_c^(l+1) kron mu_c'^(l)`` (Theorem 4.3: ``1/K`` on the
  diagonal, ``0`` off); :func:`analyse_layer`, all of these at once; and
  :func:`layer_metrics`, :func:`weight_gram_spectra`, :func:`kink_fractions`,
  deep-NC metrics of the learned features, the ``W_l^T W_l`` spectra against the
  theory and the ReLU pre-activations at the kink.

What a chapter concludes from these numbers (thresholds, verdicts) is not here but
in its paper module, :mod:`ncutils.papers.garrod`.

Theorem numbers follow the paper's arXiv v1.

References
----------
C. Garrod and J. P. Keating, "Unifying Low Dimensional Observations in Deep
Learning Through the Deep Linear Unconstrained Feature Model", arXiv:2404.06106
(2024).
V. Papyan, "Traces of Class/Cross-Class Structure Pervade Deep Learning
Spectra", JMLR 21 (2020) -- the within / cross / class split of the
Gauss-Newton matrix.

Examples
--------
>>> from ncutils.theory import ufm
>>> config = ufm.UFMConfig(width=6, per_class=2, depth=3)
>>> ufm.analyse_layer(ufm.dnc_state(config), config, 2).split_ranks
{'within': 0, 'cross': 6, 'class': 3}
"""

from __future__ import annotations

from ncutils.theory.ufm import model, spectra, training
# the code a stored UFM result runs (its key follows it): what a chapter's fingerprint hashes
from ncutils.theory.ufm._store import ANALYSIS as ANALYSIS_CODE  # noqa: F401
from ncutils.theory.ufm._store import RUN as RUN_CODE  # noqa: F401
from ncutils.theory.ufm.model import *  # noqa: F401,F403
from ncutils.theory.ufm.model import DTYPE, Activation  # noqa: F401 - constants, not in __all__
from ncutils.theory.ufm.spectra import DEFAULT_RANK_RTOL  # noqa: F401
from ncutils.theory.ufm.spectra import *  # noqa: F401,F403
from ncutils.theory.ufm.training import *  # noqa: F401,F403

# the public face of the three modules, in one namespace (a notebook needs one import)
__all__ = [*model.__all__, *spectra.__all__, *training.__all__]
