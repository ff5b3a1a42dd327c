"""``python -m ncutils.book``: the book's command line (see :mod:`ncutils.book.cli`)."""

import sys

from ncutils.book.cli import main

if __name__ == "__main__":
    sys.exit(main())
