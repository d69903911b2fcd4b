"""``python -m benchmarks``: the benchmarks, side by side with the official SDK, and the report.

::

    python -m benchmarks                 # the full run (~15 min), report in benchmarks/results/
    python -m benchmarks --quick         # a smoke run (< 2 min), report in build/bench-quick/
    python -m benchmarks --only matrix   # one section: matrix, scaling or concurrency
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from .concurrency import concurrency_spec
from .consumers import Consumer, available_consumers
from .machine import describe_machine, load_average
from .report import Results, write_report
from .scaling import scaling_specs
from .server import ServerProcess, raise_fd_limit
from .streams import StreamSpec

KB, MB = 1 << 10, 1 << 20
SECTIONS = ("matrix", "scaling", "concurrency")


@dataclass(frozen=True)
class Plan:
    """What to measure and how much."""

    quick: bool
    rounds: int
    budget: float
    scaling_rounds: int
    text_sizes: tuple[int, ...]
    tool_sizes: tuple[int, ...]
    chunkings: tuple[str | int, ...]
    scaling_sizes: tuple[int, ...]
    concurrency: tuple[int, ...]
    concurrency_deltas: int
    concurrency_rounds: int
    concurrency_passes: int
    """tracemalloc peak passes per consumer and count (one live pass besides)."""
    sections: tuple[str, ...]

    def specs(self) -> list[StreamSpec]:
        """The streams of the side-by-side matrix, grouped by chunking."""
        out = []
        for chunking in self.chunkings:
            out += [StreamSpec("text", n, chunking) for n in self.text_sizes]  # type: ignore[arg-type]
            out += [StreamSpec("tool", n, chunking) for n in self.tool_sizes]  # type: ignore[arg-type]
            out.append(StreamSpec("mixed", 0, chunking))  # type: ignore[arg-type]
        return out


FULL = Plan(
    quick=False,
    rounds=5,
    budget=1.5,
    scaling_rounds=3,
    text_sizes=(1000, 10_000, 100_000),
    tool_sizes=(10 * KB, 100 * KB, 1 * MB),
    chunkings=("event", 16384),
    scaling_sizes=(10 * KB, 20 * KB, 50 * KB, 100 * KB, 200 * KB, 500 * KB, 1 * MB, 2 * MB, 4 * MB),
    concurrency=(10, 100, 1000),
    concurrency_deltas=200,
    concurrency_rounds=3,
    concurrency_passes=3,
    sections=SECTIONS,
)
QUICK = Plan(
    quick=True,
    rounds=2,
    budget=0.3,
    scaling_rounds=2,
    text_sizes=(1000, 10_000),
    tool_sizes=(10 * KB, 100 * KB),
    chunkings=("event", 16384),
    scaling_sizes=(10 * KB, 30 * KB, 100 * KB, 300 * KB),
    concurrency=(10, 100),
    concurrency_deltas=100,
    concurrency_rounds=2,
    concurrency_passes=3,
    sections=SECTIONS,
)


def _parse(argv: list[str] | None) -> tuple[Plan, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 2 minutes)")
    parser.add_argument("--rounds", type=int, help="rounds per stream (default: 5, quick: 2)")
    parser.add_argument(
        "--budget", type=float, help="CPU seconds per run before the SDK is time-boxed"
    )
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only this section (repeatable)"
    )
    parser.add_argument("--out", type=Path, help="where the report goes")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    changes: dict[str, object] = {}
    if args.rounds is not None:
        changes["rounds"] = changes["scaling_rounds"] = max(1, args.rounds)
    if args.budget is not None:
        changes["budget"] = args.budget
    if args.only:
        changes["sections"] = tuple(s for s in SECTIONS if s in args.only)
    if changes:
        plan = dataclasses.replace(plan, **changes)  # type: ignore[arg-type]
    root = Path(__file__).resolve().parent
    out = args.out or (root.parent / "build" / "bench-quick" if plan.quick else root / "results")
    return plan, out


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _run(plan: Plan, base_url: str, results: Results) -> None:
    from . import concurrency, matrix, scaling

    classes, missing = available_consumers()
    for name, reason in missing.items():
        results.notes.append(f"**{name}** skipped: {reason}.")
        _log(f"skipping {name}: {reason}")
    consumers: list[Consumer] = [cls(base_url) for cls in classes]
    results.consumers = [c.name for c in consumers]
    results.descriptions = {c.name: c.description for c in consumers}
    try:
        for consumer in consumers:
            await consumer.open()
        warm = StreamSpec("text", 1000, "event")
        for consumer in consumers:  # untimed: imports, connections, caches
            await consumer.consume(warm, None)
        if "matrix" in plan.sections:
            _log(
                f"matrix: {len(results.specs)} streams x {len(consumers)} consumers "
                f"x {plan.rounds} rounds"
            )
            results.runs = await matrix.run_matrix(
                consumers, results.specs, plan.rounds, plan.budget, _log
            )
            # Memory hardly depends on the chunking: one pass, over 16 KB chunks.
            traced = [s for s in results.specs if s.chunking != "event"] or results.specs
            results.memory = await matrix.run_memory(
                consumers, traced, results.runs, plan.budget, _log
            )
        if "scaling" in plan.sections:
            _log(f"scaling: tool input {plan.scaling_sizes[0]} -> {plan.scaling_sizes[-1]} bytes")
            chosen = [c for c in consumers if c.name in ("triostream", "anthropic async")]
            results.scaling_runs, results.scaling = await scaling.run_scaling(
                chosen, plan.scaling_sizes, plan.scaling_rounds, plan.budget, _log
            )
    finally:
        for consumer in consumers:
            await consumer.aclose()
    if "concurrency" in plan.sections:
        _log(f"concurrency: {plan.concurrency} streams")
        results.concurrency = await concurrency.run_concurrency(
            base_url,
            plan.concurrency,
            plan.concurrency_deltas,
            plan.concurrency_rounds,
            _log,
            passes=plan.concurrency_passes,
        )


def _unraisable_counter(results: Results) -> None:
    """Count (instead of printing) the SDK's "async generator already executing" on abort."""
    counts = {"n": 0}
    default = sys.unraisablehook

    def hook(info: sys.UnraisableHookArgs) -> None:
        if isinstance(info.exc_value, ValueError | RuntimeError) and "generator" in str(
            info.exc_value
        ):
            counts["n"] += 1
            if counts["n"] == 1:
                results.notes.append(
                    "When a time-boxed SDK run is abandoned (`break` out of its stream), "
                    "the SDK's async generators report `ValueError: async generator already "
                    "executing` at garbage collection; these were counted, not shown."
                )
            return
        default(info)

    sys.unraisablehook = hook


def main(argv: list[str] | None = None) -> int:
    """Run the plan, write the report, print where it is."""
    plan, out = _parse(argv)
    started = time.perf_counter()
    raise_fd_limit()
    results = Results(
        config={
            "quick": plan.quick,
            "rounds": plan.rounds,
            "budget": plan.budget,
            "sections": list(plan.sections),
            "concurrency": list(plan.concurrency),
            "concurrency_deltas": plan.concurrency_deltas,
            "concurrency_rounds": plan.concurrency_rounds,
            "concurrency_passes": plan.concurrency_passes,
            "scaling_sizes": list(plan.scaling_sizes),
            "scaling_rounds": plan.scaling_rounds,
        },
        machine=describe_machine(),
        consumers=[],
        descriptions={},
        specs=plan.specs() if "matrix" in plan.sections else [],
    )
    _unraisable_counter(results)
    prebuild = [s.key for s in results.specs]
    if "scaling" in plan.sections:
        prebuild += [s.key for s in scaling_specs(plan.scaling_sizes)]
    if "concurrency" in plan.sections:
        prebuild.append(concurrency_spec(plan.concurrency_deltas).key)
    _log(f"starting the server process (building {len(prebuild)} streams)")
    with ServerProcess(prebuild) as server:
        _log(f"server pid {server.pid} at {server.base_url}")
        trio.run(_run, plan, server.base_url, results)
    minutes, seconds = divmod(int(time.perf_counter() - started), 60)
    results.machine["duration"] = f"{minutes} min {seconds} s"
    results.machine["load_at_end"] = load_average()
    report = write_report(results, out)
    _log(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
