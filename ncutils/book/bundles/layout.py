"""What a result bundle is: its folder layout, schema and the errors that refuse it."""

from __future__ import annotations

import re

from ncutils import verdicts

__all__ = ["BundleError", "CHECKSUMS", "PAGES", "RESULTS", "SCHEMA"]


#: The schema of a bundle's ``manifest.json``.
SCHEMA = "ncutils-bundle/1"

#: The checksums file of a bundle.
CHECKSUMS = "SHA256SUMS"

#: Where bundles live in the repository: ``results/<profile>/``.
RESULTS = "results"

#: Where the build renders the bundles' pages (under ``book/generated``).
PAGES = "bundles"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")

_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")

_STEM = re.compile(r"^[A-Za-z0-9_]+$")

_STATES = {verdicts.REPRODUCED, verdicts.NOT_REPRODUCED, verdicts.INCONCLUSIVE, "passed", "failed"}

class BundleError(ValueError):
    """A bundle that cannot be exported or merged; the message is one line saying why."""
