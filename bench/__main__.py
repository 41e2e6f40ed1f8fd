"""``python -m bench [NAME ...] [--only SECTION,...] [--profile] [--full | --smoke]``: run, print one table."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time

from bench import BENCHMARKS
from bench.common import table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[[], *BENCHMARKS], metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    parser.add_argument("--only", default="", help="comma-separated sections of the benchmark (e.g. issuance,calls)")
    parser.add_argument("--profile", action="store_true", help="also print cProfile hotspots where available")
    parser.add_argument("--full", action="store_true", help="more rounds and the long variants (several minutes)")
    parser.add_argument("--smoke", action="store_true",
                        help="every section with minimal rounds (checks that the benchmarks run; figures meaningless)")
    args = parser.parse_args(argv)

    rows, details = [], []
    t0 = time.perf_counter()
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        kwargs = {"profile": args.profile, "full": args.full, "smoke": args.smoke}
        if args.only:
            kwargs["only"] = tuple(s.strip() for s in args.only.split(",") if s.strip())
        try:
            r, d = module.run(**kwargs)
        except ValueError as e:  # an unknown --only section
            parser.error(f"{name}: {e}")
        rows += r
        details += d
    print(f"stepless benchmarks — python {platform.python_version()}, {platform.machine()}; "
          f"ratios are against a baseline measured in this run, absolute figures are notes")
    print(table(rows))
    for block in details:
        print()
        print(block)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
