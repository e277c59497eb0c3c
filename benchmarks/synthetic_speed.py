"""How fast the built-in synthetic faces are written, on one core.

    python benchmarks/synthetic_speed.py [--count 400]

Prints faces per second for both layouts. The code is single-threaded: faces per CPU second
is the one-core speed; the wall-clock figure is lower on a busy machine. Each face includes
the swapped ground-truth render, the mask, and encoding every file to disk (in a temporary
folder, deleted afterwards).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.synthetic import make_celeba, make_glasses  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=400)
    args = parser.parse_args()
    for name, make in (("celeba", make_celeba), ("glasses", make_glasses)):
        with tempfile.TemporaryDirectory() as folder:
            make(Path(folder) / "warmup", 5)
            start, cpu_start = time.perf_counter(), time.process_time()
            make(Path(folder) / name, args.count)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        # CPU time is what one core spends; wall time also counts waiting for a busy machine
        print(f"{name:8s} {args.count} faces: {args.count / cpu:.0f} faces/s of CPU time "
              f"({args.count / seconds:.0f} faces/s wall clock)")


if __name__ == "__main__":
    main()
