"""Result bundles: a built profile exported by one machine, merged into the website by any build.

A machine with a GPU builds the ``gpu`` or ``paper`` profile, exports it
(``python -m ncutils.book export --profile gpu``, :func:`export`) and proposes the folder
``results/gpu/`` in a pull request. Every build (``make book``, any profile) then merges each
bundle under ``results/`` into the site (:func:`publish`): the bundle's profile gets its column
on the scoreboard, each chapter page shows the bundle's verdict beside the live one with a
link to the bundle's executed notebook, which is rendered as a page of the book.

A bundle (``results/<profile>/``) holds

``manifest.json``
    ``schema`` (:data:`SCHEMA`), ``profile``, ``exported_at``, ``machine``, ``devices``, the
    build's ``git`` state (commit, dirty flag, branch), ``environment`` (Python, platform,
    package versions) and ``hardware``, and per chapter its ``digest`` (below), the modules
    the digest covers, its resolved ``parameters``, when and at which commit it ran.
``findings.json``
    The profile's section of ``_build/findings.json`` (a findings file of one profile).
``notebooks/<stem>.ipynb``
    The executed notebooks, as the build wrote them (figures are inside them).
``figures/<stem>/figure-<n>.png``
    The figures of each notebook as files, for reviewing a pull request.
``SHA256SUMS``
    The sha256 of every other file (``sha256sum`` format); a file missing, added or changed
    refuses the whole bundle.

**The chapter digest.** The digest of a chapter is the sha256 of its notebook's cells (type,
source, tags: what the build's cache key reads) and of the *code* of every ``ncutils`` module
the notebook imports, followed transitively through the modules' own imports (relative ones
too, and the packages' ``__init__`` files that importing runs). "Code" is the module's syntax
tree without docstrings and comments, as the results store keys its entries: an edit to a
docstring or to a module the chapter never imports leaves the digest, and the bundle fresh.
The build's cache key covers the whole package instead (any edit re-runs every chapter on the
machine that has the results store); a bundle is built elsewhere and rebuilt rarely, so it is
stale only when code it could have run changed. The import graph is read from the source, not
executed: an import made by name at run time (``importlib``) is not followed, and a notebook
that cannot be parsed counts as importing the whole package. A chapter is also stale when its
parameters in today's profile differ from the bundle's.

**Safety.** A bundle is data from outside: nothing in it is executed or imported. Its
notebooks are rendered with safe output types only: PNG images, SVG images without scripts,
event handlers, external references or embedded HTML (rendered as ``<img>``), ``text/plain``,
and the book's own glued values, which are made again from the bundle's findings by this
module (:class:`~ncutils.book.findings` renders and escapes them). Every other type (HTML,
JavaScript, Markdown, LaTeX, widgets) is removed; a figure the build stored as HTML keeps its
PNG image and its caption as text. A Markdown cell is rendered as Markdown only when the
same cell is in today's notebook (the repository's own text); any other is shown as literal
text. Checksums catch damage and edits by hand, not a forger, who can recompute them: that
is what the review of the pull request is for, and why the rendering trusts nothing inside.

Seven modules, the public names re-exported here (``from ncutils.book import bundles``):
:mod:`~ncutils.book.bundles.layout`, :mod:`~ncutils.book.bundles.digests`,
:mod:`~ncutils.book.bundles.exporting`, :mod:`~ncutils.book.bundles.checking`,
:mod:`~ncutils.book.bundles.merging`, :mod:`~ncutils.book.bundles.rendering` and
:mod:`~ncutils.book.bundles.pages`.
"""

from ncutils.book.bundles.layout import *  # noqa: F401,F403
from ncutils.book.bundles.digests import *  # noqa: F401,F403
from ncutils.book.bundles.exporting import *  # noqa: F401,F403
from ncutils.book.bundles.checking import *  # noqa: F401,F403
from ncutils.book.bundles.merging import *  # noqa: F401,F403
from ncutils.book.bundles.rendering import *  # noqa: F401,F403
from ncutils.book.bundles.pages import *  # noqa: F401,F403
from ncutils.book.bundles import checking, digests, exporting, layout, merging, pages, rendering

__all__ = sorted({*layout.__all__, *digests.__all__, *exporting.__all__, *checking.__all__, *merging.__all__, *rendering.__all__, *pages.__all__})
