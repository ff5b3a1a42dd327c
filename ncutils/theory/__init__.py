"""Data-free models of collapse: no dataset, no trained network, the model is the data.

- :mod:`ncutils.theory.ufm` -- the deep (linear and ReLU) unconstrained feature model: the
  model and its deep-NC optimum, training, and the layer Hessian and gradient spectra.

What a chapter concludes from these models (criteria, thresholds, verdicts) lives in its
paper module under :mod:`ncutils.papers`, not here.
"""
