"""Generate the example repo's data under sql_features/data/ (git-ignored).

    python sql_features/generate.py              # a few thousand rows ending today, about a second
    python sql_features/generate.py --rows 1000000 --seed 7
    python sql_features/generate.py --end 2024-03-31   # the reference window the tests use

The 90 days of data end today (midnight UTC), so the online values `make demo` shows are fresh;
the rows are the same every day, only moved in time (see fsql.examples).

The logic lives in :mod:`fsql.examples` so that ``fsql init`` uses the same generator.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from fsql.examples import DEFAULT_ROWS, DEFAULT_SEED, generate_example_data, today_end


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                        help=f"purchase rows; users and clicks scale with it (default {DEFAULT_ROWS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"random seed (default {DEFAULT_SEED}); same seed, same data")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data",
                        help="output folder (default: data/ beside this script)")
    parser.add_argument("--end", type=datetime.fromisoformat, default=None,
                        help="exclusive end of the 90-day window, a date (default: today, UTC)")
    args = parser.parse_args(argv)
    end = args.end or today_end()
    counts = generate_example_data(args.out, rows=args.rows, seed=args.seed, end=end)
    summary = ", ".join(f"{name} {count:,}" for name, count in counts.items())
    print(f"wrote {summary} rows under {args.out} (up to {end.date().isoformat()})")


if __name__ == "__main__":
    main()
