"""CelebA readers on the full-size official text files (202,599 rows).

Reads each file of ``../shared/data/celeba-fulltext`` (or ``--root``) with the
readers of ``augment.data.celeba`` and prints rows and seconds (median, min,
max of ``--runs``). The attribute file there has the official count line
(202599) over its first 20,000 rows: the reader logs the mismatch and reads the
rows. Run: ``.venv/bin/python benchmarks/celeba_readers_bench.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from augment.data import celeba  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "celeba-fulltext")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    readers = [
        (celeba.IDENTITY_FILE, celeba.read_identities),
        (celeba.PARTITION_FILE, celeba.read_partition),
        (celeba.ATTR_FILE, lambda p: celeba.read_attributes(p)[1]),
        (celeba.LANDMARK_FILE, celeba.read_landmarks),
    ]
    for name, read in readers:
        path = args.root / name
        if not path.is_file():
            continue
        times, rows = [], 0
        for _ in range(args.runs):
            t0 = time.perf_counter()
            rows = len(read(path))
            times.append(time.perf_counter() - t0)
        print(f"{name}: {rows} rows, {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f})")


if __name__ == "__main__":
    main()
