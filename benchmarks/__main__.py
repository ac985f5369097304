"""``python -m benchmarks [area ...]``: run every workload and print engine-vs-baseline ratios.

Ratios are ``baseline time / engine time`` measured in this one run (> 1 means the engine is faster),
so they stay meaningful on a shared, noisy machine where absolute times do not.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from benchmarks._harness import measure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("areas", nargs="*", help="bench_<area> modules to run (default: all)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per case (best counts)")
    args = parser.parse_args(argv)

    import benchmarks

    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    if args.areas:
        names = [n for n in names if n.removeprefix("bench_") in args.areas or n in args.areas]
    rows = []
    reports = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        if hasattr(module, "report"):  # numbers that are not ratios (sizes, one-off timings)
            reports.append(module.report)
        groups: dict[str, list] = {}
        for case in module.CASES:
            groups.setdefault(case.group, []).append(case)
        for group, cases in groups.items():
            timings = {}
            results = {}
            for case in cases:
                seconds, result = measure(case, args.repeat)
                timings[case.name] = seconds
                results[case.name] = result
                print(f"  {group} / {case.name}: {seconds * 1e3:.1f} ms", file=sys.stderr)
            engine_time = timings.get("engine")
            for case in cases:
                if case.name == "engine":
                    continue
                if case.check is not None and "engine" in results:
                    case.check(results["engine"], results[case.name])
                ratio = timings[case.name] / engine_time if engine_time else float("nan")
                rows.append((group, case.name, engine_time, timings[case.name], ratio, case.target))
    print()
    header = f"{'workload':<48} {'baseline':<22} {'engine ms':>10} {'base ms':>10} {'ratio':>8}  target"
    print(header)
    print("-" * len(header))
    for group, base, engine_time, base_time, ratio, target in rows:
        print(f"{group:<48} {base:<22} {engine_time * 1e3:>10.1f} {base_time * 1e3:>10.1f} {ratio:>7.2f}x  {target}")
    for report in reports:
        print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
