"""ncutils: measure Neural Collapse at every layer of a classifier.

The shared package behind the Neural Collapse companion book. One module per
concern (see ``DESIGN.md``): ``stats`` (streaming class statistics), ``metrics``
(NC1-NC4 and friends from those statistics), ``data``, ``models``, ``probe``,
``train``, ``ufm``, ``plots``, ``findings`` and ``book``.
"""

__version__ = "0.1.0"
