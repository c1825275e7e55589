"""Run one benchmark: `python -m bench NAME [ARGS…]`.

Each benchmark is a module `bench/NAME.py` with `main(argv: list[str]) -> dict`. It prints what it
measures as it goes; this runner prints the returned figures as one line of JSON, always last.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main() -> int:
    names = available()
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(f"usage: python -m bench NAME [ARGS...]; NAME is one of: {', '.join(names)}")
        return 2
    name = sys.argv[1]
    if name not in names:
        print(f"unknown benchmark {name!r}; choose one of: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name}")
    figures = module.main(sys.argv[2:])
    print(json.dumps(figures, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
