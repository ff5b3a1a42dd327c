"""Data-free models of collapse: no dataset, no trained network, the model is the data.

- :mod:`ncutils.theory.ufm` -- the deep (linear and ReLU) unconstrained feature model: the
  model and its deep-NC optimum, training, and the layer Hessian and gradient spectra.
- :mod:`ncutils.theory.lesde` -- the locally elastic SDE/ODE of Zhang, Wang, Su (2021): the
  official simulator's update vectorised over grid points, trials, classes and samples
  (float64, seeded), separation measures, the official estimators of alpha and beta from
  class-mean logits, and the official per-sample SGD protocol vectorised over trials
  (``train_trials``: it trains real networks, so it may move to a core module).

What a chapter concludes from these models (criteria, thresholds, verdicts) lives in its
paper module under :mod:`ncutils.papers`, not here.
"""
