"""Store keys with and without the per-module cache of the import walk, side by side.

Every result in the store is keyed by the code it runs, found by walking the imports of its
entry modules (``ncutils.store.code``). Each module's imports are now read once per source
(``_imported_names``, cached by the file's bytes); before, every key walked every module's
syntax tree again. This script computes the trained-run and statistics keys of a profile's
runs both ways in one process and prints the times and their ratio.

    python benchmarks/store_keys.py [--profile cpu] [--repeats 3]

"Walk per key" clears the cache before each key, which is what every key cost before the
cache; "cached" is what a build pays now. The keys are checked to be equal.
"""

from __future__ import annotations

import argparse
import time

from ncutils.book import chapters, profiles
from ncutils.book.provenance import project_root
from ncutils.store import code, keys


def profile_configs(profile: str) -> list:
    """Every TrainConfig the profile's chapters train (duplicates kept: a build keys them all)."""
    entries = profiles.load_profile(project_root(), profile)
    configs = []
    for chapter in chapters.CHAPTERS:
        if chapter.trains is not None:
            configs += chapter.trains(chapter.resolve(entries.get(chapter.stem) or {}, profile=profile))
    return configs


def key_all(configs: list, *, walk_each: bool) -> tuple[float, list[str]]:
    started = time.perf_counter()
    found = []
    for config in configs:
        if walk_each:
            code._imported_names.cache_clear()
        trained = keys.trained_key(config)
        if walk_each:
            code._imported_names.cache_clear()
        found.append(keys.statistics_key(trained, 1, "0" * 64, {}))
    return time.perf_counter() - started, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    configs = profile_configs(arguments.profile)
    key_all(configs[:1], walk_each=False)  # imports, data fingerprints and parses, once
    print(f"{len(configs)} runs of profile {arguments.profile}: a trained-run and a statistics key each")
    print(f"{'repeat':>6} {'walk per key s':>15} {'cached s':>10} {'ratio':>7}")
    for repeat in range(arguments.repeats):
        slow, slow_keys = key_all(configs, walk_each=True)
        fast, fast_keys = key_all(configs, walk_each=False)
        assert slow_keys == fast_keys, "the cache changed a key"
        print(f"{repeat + 1:>6} {slow:>15.2f} {fast:>10.3f} {slow / fast:>6.0f}x")


if __name__ == "__main__":
    main()
