"""``make bench``: run every benchmark module and print one table of ratios.

    .venv/bin/python benchmarks/run.py                 # default sizes (< 10 min on 2 cores)
    .venv/bin/python benchmarks/run.py --quick         # small N, a smoke run (< 60 s)
    .venv/bin/python benchmarks/run.py --full          # the figures of record (1M subscribers)
    .venv/bin/python benchmarks/run.py --only pipeline # one module (pipeline, delivery, store, channels,
                                                       # subscribers); pipeline.latency,critical picks
                                                       # benchmarks in it

Each module is ``benchmarks/bench_<name>.py`` with a ``main()``. ``main`` may take ``quick``,
``full`` and ``only`` keyword arguments (those it declares are passed) and may return its rows;
a module that returns nothing is read from its ``RESULTS`` list. A row is a dict with
``name, measured, baseline, ratio, target, ok`` or a tuple ``(name, measured, target, vs)``.
A module whose ``main()`` parses ``sys.argv`` sees only its own path (plus its ``QUICK_ARGV``
list under ``--quick``). One module failing is reported and the others still run.
Exit status 1 when any row failed.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MODULES = ("pipeline", "delivery", "store", "channels", "subscribers")


def normalise(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return {
            "name": str(raw.get("name", "?")),
            "measured": str(raw.get("measured", raw.get("value", "-"))),
            "baseline": str(raw.get("baseline", "-")),
            "ratio": str(raw.get("ratio", raw.get("vs", "-"))),
            "target": str(raw.get("target", "-")),
            "ok": raw.get("ok"),
        }
    items = [str(x) for x in raw]
    if len(items) == 4:  # (name, value, target, vs)
        name, value, target, vs = items
        return {"name": name, "measured": value, "baseline": "-", "ratio": vs, "target": target, "ok": None}
    items += ["-"] * (6 - len(items))
    name, measured, baseline, ratio, target, ok = items[:6]
    return {"name": name, "measured": measured, "baseline": baseline, "ratio": ratio, "target": target,
            "ok": {"True": True, "False": False}.get(ok)}  # fmt: skip


def run_module(
    name: str, quick: bool, full: bool, sub: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    try:
        module = importlib.import_module(f"bench_{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bench_{name}":
            return [], "not present"
        return [], f"import failed: {exc}"
    except Exception as exc:  # noqa: BLE001
        return [], f"import failed: {type(exc).__name__}: {exc}"
    main = getattr(module, "main", None)
    if main is None:
        return [], "has no main()"
    params = inspect.signature(main).parameters
    kwargs: dict[str, Any] = {}
    if "quick" in params:
        kwargs["quick"] = quick
    if "full" in params:
        kwargs["full"] = full
    if sub and "only" in params:
        kwargs["only"] = sub
    results = getattr(module, "RESULTS", None)
    if isinstance(results, list):
        results.clear()
    # A module whose main() parses sys.argv must not see run.py's options; QUICK_ARGV lets
    # it say how to run small under --quick.
    argv = [str(HERE / f"bench_{name}.py")]
    if quick:
        argv += list(getattr(module, "QUICK_ARGV", []))
    saved, sys.argv = sys.argv, argv
    try:
        returned = main(**kwargs)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return [], f"exited with {exc.code}"
        returned = None
    except Exception:  # noqa: BLE001 - one benchmark failing must not stop the rest
        traceback.print_exc()
        rows = [normalise(r) for r in (results or [])]
        return rows, "raised (see traceback above)"
    finally:
        sys.argv = saved
    if isinstance(returned, int) and not isinstance(returned, bool) and returned != 0:
        return [normalise(r) for r in (results or [])], f"main() returned {returned}"
    raw = returned if isinstance(returned, list) else (results or [])
    return [normalise(r) for r in raw], None


def verdict(ok: Any) -> str:
    return "pass" if ok is True else "FAIL" if ok is False else "-"


def print_table(rows: list[tuple[str, dict[str, Any]]]) -> None:
    head = ("module", "name", "measured", "baseline (same run)", "ratio", "target", "pass/fail")
    table = [head] + [
        (mod, r["name"], r["measured"], r["baseline"], r["ratio"], r["target"], verdict(r["ok"]))
        for mod, r in rows
    ]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(head))]
    for n, line in enumerate(table):
        print("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="notifyd benchmarks")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    size.add_argument("--full", action="store_true", help="the figures of record (1M subscribers)")
    parser.add_argument(
        "--only", help="a module (pipeline, store, channels, subscribers), optionally module.bench[,bench]"
    )
    args = parser.parse_args(argv)
    if args.quick:
        os.environ["NOTIFYD_BENCH_QUICK"] = "1"
    if args.full:
        os.environ["NOTIFYD_BENCH_FULL"] = "1"
    selected: list[tuple[str, str | None]] = []
    if args.only:
        name, _, sub = args.only.partition(".")
        selected.append((name, sub or None))
    else:
        selected = [(m, None) for m in MODULES]
    started = time.monotonic()
    rows: list[tuple[str, dict[str, Any]]] = []
    problems: list[tuple[str, str]] = []
    for name, sub in selected:
        print(f"\n===== {name} =====", flush=True)
        t = time.monotonic()
        got, problem = run_module(name, args.quick, args.full, sub)
        rows.extend((name, r) for r in got)
        if problem:
            problems.append((name, problem))
            print(f"  [{name}] {problem}")
        print(f"  [{name}] {time.monotonic() - t:.0f} s", flush=True)
    mode = "quick" if args.quick else "full" if args.full else "default"
    print(f"\n===== summary ({mode}, {time.monotonic() - started:.0f} s) =====")
    print_table(rows)
    for name, problem in problems:
        print(f"  ! {name}: {problem}")
    failed = any(r["ok"] is False for _, r in rows) or any(p != "not present" for _, p in problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
