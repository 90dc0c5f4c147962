"""python -m contrib.bench [area ...]: run the benchmarks of each area (default: all)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback

import contrib.bench as bench


def main(argv: list[str]) -> int:
    areas = argv or sorted(m.name for m in pkgutil.iter_modules(bench.__path__)
                           if not m.name.startswith("_"))
    report = bench.Report()
    failed = []
    for area in areas:
        print(f"== {area}", flush=True)
        try:
            module = importlib.import_module(f"contrib.bench.{area}")
            if hasattr(module, "run"):
                module.run(report)
            else:
                module.main()
        except Exception:
            traceback.print_exc()
            failed.append(area)
    if failed:
        print(f"benchmarks that could not run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
