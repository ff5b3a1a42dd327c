"""ncutils: measure Neural Collapse at every layer of a classifier.

The shared package behind the Neural Collapse companion book, in four floors
(``CONTRIBUTING.md`` has the map):

- core, one concept per module, knowing no paper: ``stats`` (streaming class
  statistics), ``metrics`` (NC1-NC4 and friends from those statistics), ``probe``
  (feature capture and layer sweeps), ``data``, ``models``, ``train``, ``runs``
  (the results store), ``grid`` (grids of runs, seeds as an axis), ``cluster``
  and ``verdicts`` (the four verdict states and how runs combine);
- ``theory``: data-free models (``theory.ufm``);
- ``papers``: one module per paper, its configurations and pre-registered criteria;
- ``book``: the build, findings, provenance and figures.
"""

__version__ = "0.1.0"
