"""The book floor: from chapter notebooks to the website and its scoreboard.

Modules, in the order a build uses them:

:mod:`~ncutils.book.profiles`
    Chapters (``notebooks/*.ipynb`` and their ``parameters`` cells), profiles
    (``notebooks/profiles/<profile>.yaml``) and ``_toc.yml``: read, checked
    against each other, and turned into jobs with cache keys.
:mod:`~ncutils.book.yaml_files`
    Profiles and ``-p`` values read strictly: YAML 1.2 floats, no repeated keys.
:mod:`~ncutils.book.execute`
    The Jupyter kernel, papermill execution, reuse of unchanged chapters,
    ``run`` of one chapter with other parameters.
:mod:`~ncutils.book.manifest`
    Environment, hardware and timings of a build, and their Markdown tables.
:mod:`~ncutils.book.stopping`
    A build and everything it starts as one process tree that SIGINT, SIGTERM or
    the build's death stops together.
:mod:`~ncutils.book.cli`
    ``python -m ncutils.book build|run|validate|scoreboard|strip``: the build
    in order, and the command line.
:mod:`~ncutils.book.tiny`
    ``build --tiny`` and ``run --tiny``: any profile's chapters at tiny size
    (``notebooks/tiny.yaml``) on stand-in data, into ``_build/tiny/<profile>/``.

and, used from inside the chapter notebooks:

:mod:`~ncutils.book.findings`
    Verdicts on the papers' findings (the states of :mod:`ncutils.verdicts`),
    amendments to criteria, the scoreboard.
:mod:`~ncutils.book.provenance`
    Profile, parameters, seed, device and commit of every number.
:mod:`~ncutils.book.plots`
    The book's figures.

Files (relative to the repository root)::

    notebooks/<chapter>.ipynb          source chapters, stored without outputs
    notebooks/profiles/<profile>.yaml  {chapter: {parameter: value}}
    _build/notebooks/<profile>/        executed notebooks, their findings, state.json
    book/generated/                    what the book renders: executed chapters,
                                       scoreboard and manifest tables (git-ignored)
    _build/findings.json               every finding of every profile built here
    _build/manifest.json               environment, hardware, timings of the last build
    runs/                              training results shared by chapters (ncutils.train)

A chapter is added by adding its notebook, one entry in every profile file and
a ``- file: book/generated/<chapter>`` line in ``_toc.yml``.

The floor may use the core modules and :mod:`ncutils.verdicts`; nothing
outside it imports the build modules, and it computes no metric itself.
"""

