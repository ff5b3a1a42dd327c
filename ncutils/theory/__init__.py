"""Data-free models of collapse: the deep unconstrained feature model (:mod:`ncutils.theory.ufm`)."""
