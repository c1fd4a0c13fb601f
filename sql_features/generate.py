"""Generate the example repo's data under sql_features/data/ (git-ignored).

    python sql_features/generate.py              # a few thousand rows, about a second
    python sql_features/generate.py --rows 1000000 --seed 7

The logic lives in :mod:`fsql.examples` so that ``fsql init`` uses the same generator.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fsql.examples import DEFAULT_ROWS, DEFAULT_SEED, generate_example_data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                        help=f"purchase rows; users and clicks scale with it (default {DEFAULT_ROWS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"random seed (default {DEFAULT_SEED}); same seed, same data")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data",
                        help="output folder (default: data/ beside this script)")
    args = parser.parse_args(argv)
    counts = generate_example_data(args.out, rows=args.rows, seed=args.seed)
    summary = ", ".join(f"{name} {count:,}" for name, count in counts.items())
    print(f"wrote {summary} rows under {args.out}")


if __name__ == "__main__":
    main()
