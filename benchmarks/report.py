"""The report: a markdown file of tables (targets first), the plots, and the raw figures as JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .concurrency import PER_POOL, ConcurrencyRun, concurrency_spec, memory_ratios
from .measure import Run, sig, summarize
from .scaling import ScalingResult
from .streams import StreamSpec
from .targets import FLOOR, TRIO, Check, check_targets, paired_ratios

__all__ = ["Results", "write_report"]


@dataclass
class Results:
    """Everything one ``python -m benchmarks`` run measured, and how."""

    config: dict[str, Any]
    machine: dict[str, Any]
    consumers: list[str]
    descriptions: dict[str, str]
    specs: list[StreamSpec]
    runs: list[Run] = field(default_factory=list)
    memory: dict[tuple[str, str], float] = field(default_factory=dict)
    scaling_runs: list[Run] = field(default_factory=list)
    scaling: ScalingResult | None = None
    concurrency: list[ConcurrencyRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _mem(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value >= 1 << 20:
        return f"{value / (1 << 20):.1f} MB"
    return f"{value / 1024:.0f} KB"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _target_rows(checks: Sequence[Check]) -> list[list[str]]:
    rows = []
    for check in checks:
        figure = check.figure.fmt(3, check.suffix)
        if check.estimated:
            figure += " (SDK est.)"
        verdict = check.verdict if check.informational else f"**{check.verdict}**"
        rows.append([check.target, check.where, figure, check.goal, verdict])
    return rows


def _stream_title(spec: StreamSpec) -> str:
    return f"{spec.label}, {spec.chunking_label} ({spec.wire_events:,} events)"


_SDK_PAIRS = (("triostream", "anthropic async"), ("triostream sync", "anthropic sync"))


def _matrix_tables(results: Results) -> list[str]:
    lines: list[str] = []
    names = results.consumers
    runs = results.runs
    cpu_rows, ratio_rows, wall_rows, mem_rows = [], [], [], []
    for spec in results.specs:
        cpu_row, ratio_row, wall_row, mem_row = (
            [_stream_title(spec)],
            [spec.label + ", " + spec.chunking_label],
            [spec.label + ", " + spec.chunking_label],
            [spec.label + ", " + spec.chunking_label],
        )
        for name in names:
            mine = [r for r in runs if r.consumer == name and r.stream == spec.key]
            est = any(r.estimated for r in mine)
            mark = " est." if est else ""
            cpu_row.append(summarize([r.cpu_per_event_us for r in mine]).fmt(3) + mark)
            wall_row.append(summarize([r.wall * 1e3 for r in mine]).fmt(3) + mark)
            if name == FLOOR:
                ratio_row.append("1")
            else:
                ratios, est = paired_ratios(runs, name, FLOOR, spec.key)
                ratio_row.append(summarize(ratios).fmt(3, "x") + (" est." if est else ""))
            mem_row.append(_mem(results.memory.get((name, spec.key), math.nan)))
        cpu_rows.append(cpu_row)
        ratio_rows.append(ratio_row)
        wall_rows.append(wall_row)
        if any((name, spec.key) in results.memory for name in names):
            mem_rows.append(mem_row)
    sdk_rows = []
    for spec in results.specs:
        row = [spec.label + ", " + spec.chunking_label]
        for ours, theirs in _SDK_PAIRS:
            if ours in names and theirs in names:
                ratios, est = paired_ratios(runs, theirs, ours, spec.key)
                row.append(summarize(ratios).fmt(3, "x") + (" est." if est else ""))
        sdk_rows.append(row)
    pairs = [(m, t) for m, t in _SDK_PAIRS if m in names and t in names]
    if pairs:
        lines += ["### The official SDK's CPU / triostream's (paired per round)", ""]
        lines += [*_table(["stream", *[f"{t} / {m}" for m, t in pairs]], sdk_rows), ""]
    header = ["stream", *names]
    lines += ["### CPU µs per event (median, min-max over rounds)", ""]
    lines += [*_table(header, cpu_rows), ""]
    lines += ["### CPU relative to the floor (ratio paired per round: median, min-max)", ""]
    lines += [*_table(header, ratio_rows), ""]
    lines += ["### Wall time, ms (median, min-max)", ""]
    lines += [*_table(header, wall_rows), ""]
    lines += [
        "### Peak memory growth (tracemalloc, one pass over the 16 KB-chunk streams; "
        "- where the SDK was time-boxed)",
        "",
    ]
    lines += [*_table(header, mem_rows), ""]
    return lines


def _scaling_table(result: ScalingResult) -> list[str]:
    names = list(result.cpu)
    rows = []
    for i, size in enumerate(result.sizes):
        row = [f"{size / 1024:,.0f} KB"]
        for name in names:
            value = result.cpu[name][i]
            est = " est." if result.estimated[name][i] else ""
            row.append(f"{value * 1e3:,.1f} ms{est}")
        if "anthropic async" in result.cpu and "triostream" in result.cpu:
            row.append(f"{result.cpu['anthropic async'][i] / result.cpu['triostream'][i]:,.0f}x")
        rows.append(row)
    header = ["tool input", *[f"{n} CPU (median)" for n in names]]
    if len(header) - 1 < len(rows[0]) - 1:
        header.append("SDK / triostream")
    lines = [*_table(header, rows), ""]
    for name in names:
        measured = result.exponent.get(name)
        if measured is None:
            lines.append(
                f"- {name}: too few sizes measured to the end for a fit; with the estimated "
                f"sizes the exponent is {result.exponent_all[name]:.2f}"
            )
            continue
        lines.append(
            f"- {name}: growth exponent **{measured:.2f}** over the sizes measured to the end, "
            f"{result.exponent_tail[name]:.2f} over the three largest of them"
            + (
                f" ({result.exponent_all[name]:.2f} with the estimated sizes too)"
                if any(result.estimated[name])
                else ""
            )
        )
    return [*lines, ""]


def _kib(value: float) -> str:
    return "-" if math.isnan(value) else sig(value / 1024, 3)


def _concurrency_table(runs: Sequence[ConcurrencyRun]) -> list[str]:
    rows, ratio_rows = [], []
    counts = sorted({r.streams for r in runs})
    names = sorted({r.consumer for r in runs})
    for n in counts:
        for name in names:
            mine = [r for r in runs if r.consumer == name and r.streams == n]
            timed = [r for r in mine if r.kind == "timed"]
            if not timed:
                continue
            peak = summarize([r.memory_per_stream / 1024 for r in mine if r.kind == "peak"])
            live = [r.memory_per_stream for r in mine if r.kind == "live"]
            rows.append(
                [
                    f"{n:,}",
                    name,
                    f"{sum(r.completed for r in mine)}/{n * len(mine)}",
                    summarize([r.events_per_second / 1000 for r in timed]).fmt(3),
                    summarize([r.cpu_per_event_us for r in timed]).fmt(3),
                    summarize([r.wall for r in timed]).fmt(3),
                    peak.fmt(3),
                    _kib(live[0]) if live else "-",
                ]
            )
        if TRIO in names and FLOOR in names:
            peak_ratios = memory_ratios(runs, n, "peak", TRIO, FLOOR)
            live_ratios = memory_ratios(runs, n, "live", TRIO, FLOOR)
            ratio_rows.append(
                [
                    f"{n:,}",
                    summarize(peak_ratios).fmt(3, "x"),
                    summarize(live_ratios).fmt(3, "x"),
                ]
            )
    header = [
        "streams",
        "consumer",
        "completed",
        "k events/s",
        "CPU µs/event",
        "wall s",
        "peak KiB/stream (median, min-max)",
        "live KiB/stream",
    ]
    lines = [*_table(header, rows), ""]
    if ratio_rows:
        lines += [
            "triostream's memory per stream / the floor's (peak: paired pass by pass, "
            "median and min-max):",
            "",
            *_table(["streams", "peak", "live"], ratio_rows),
            "",
        ]
    return lines


def write_report(results: Results, out: Path) -> Path:
    """Write ``README.md``, the plots and ``raw/results.json`` into ``out``; returns the report."""
    from . import plots

    out.mkdir(parents=True, exist_ok=True)
    checks = check_targets(results.runs, results.specs, results.scaling, results.concurrency)
    figures: list[tuple[str, str]] = []
    if results.runs:
        plots.plot_cpu_per_event(
            results.runs, results.specs, results.consumers, out / "cpu_per_event.png"
        )
        figures.append(("CPU per event per consumer", "cpu_per_event.png"))
    if results.scaling is not None:
        plots.plot_scaling(results.scaling, out / "tool_input_scaling.png")
        figures.append(("Tool-input scaling (log-log)", "tool_input_scaling.png"))
    if results.concurrency:
        plots.plot_concurrency(results.concurrency, out / "concurrency.png")
        figures.append(("Concurrent streams", "concurrency.png"))

    cfg, machine = results.config, results.machine
    lines = [
        "# triostream benchmarks",
        "",
        f"Measured {machine['date']} by `nox -s bench` (`python -m benchmarks"
        f"{' --quick' if cfg.get('quick') else ''}`), commit {machine['commit']}.",
        f"{cfg['rounds']} rounds; every round runs every consumer on the stream, so ratios are "
        "paired within a round (median and min-max of the per-round ratios).",
        "",
        "## Targets (DESIGN.md)",
        "",
    ]
    lines += _table(["target", "stream", "measured", "goal", "verdict"], _target_rows(checks))
    lines += [""]
    if (out / "PROFILE.md").exists():
        lines += [
            "Where the time goes, for the targets missed, and the design changes that would "
            "fix them: [PROFILE.md](PROFILE.md).",
            "",
        ]
    lines += ["## Method", ""]
    lines += [
        "- The server is `triostream.testing.MockServer` in **its own process** "
        "(`python -m benchmarks.server`), replaying a prepared reply per stream; "
        "`time.process_time()` in the benchmark process therefore measures the consumer "
        "alone. Loopback only (127.0.0.1).",
        "- CPU per event = process CPU time for the whole stream (request, headers, body, "
        "final message) / the number of SSE events in the body.",
        "- The floor: `httpx.AsyncClient` under trio reading the same bytes (`aiter_raw`), "
        "splitting events on blank lines and `msgspec.json.decode` of each `data:` into a dict, "
        "nothing else. It is the cost of HTTP + JSON in Python on this machine.",
        "- Consumers count the events they get and take the final message; the final message "
        "of every run is checked against the stream (after the clock stops).",
        f"- The official SDK is **time-boxed** at {cfg['budget']} CPU s per run: beyond that, it "
        "stops and its total is **estimated** by fitting `a + b·k + c·k²` to its cumulative "
        "CPU (and wall) time after k events on the prefix it consumed (its per-delta cost grows "
        "with what it has accumulated). Estimated figures are marked *est.*. They are **lower "
        "bounds**: the SDK's cost per byte re-parsed also grows with the buffer (caches, "
        "allocation), so full runs cost more than the quadratic extrapolation says (see "
        "PROFILE.md for the check against complete runs); ratios against them are therefore "
        "at least the figure shown.",
        "- Memory: growth of the tracemalloc peak over the allocations before the run, in a "
        "separate pass (tracemalloc slows Python down, so it is never on during timed runs).",
        "- SDK clients use `max_retries=0`; every client keeps its connection pool across rounds "
        "(an untimed warm-up opens the connections).",
        "",
        "Consumers:",
        "",
    ]
    lines += [f"- **{name}**: {results.descriptions[name]}" for name in results.consumers]
    lines += [""]
    if results.notes:
        lines += ["Notes:", ""] + [f"- {note}" for note in results.notes] + [""]
    lines += ["## Machine", ""]
    cpu = machine["cpu"]
    lines += [
        f"- CPU: {cpu.get('Model name', '?')}, {machine['cores']} logical CPUs"
        + (f", virtualised ({cpu['Hypervisor']})" if cpu.get("Hypervisor") else ""),
        f"- Memory: {machine['memory']}; OS: {machine['os']}; {machine['python']}",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()),
        f"- Load average (1/5/15 min) at start: {machine['load_at_start']}, "
        f"at end: {machine.get('load_at_end', '?')}; the server process shares the machine "
        "(it uses the other core).",
        f"- Duration of the whole run: {machine.get('duration', '?')}",
        "",
    ]
    if results.runs:
        lines += ["## Every consumer on every stream", ""]
        lines += _matrix_tables(results)
    if results.scaling is not None:
        lines += [
            "## Tool-input scaling (one tool call, ~20-byte deltas, 16 KB chunks)",
            "",
            f"{cfg['scaling_rounds']} rounds per size; the SDK is time-boxed as above. "
            "The exponent is the slope of a least-squares line through log(CPU) against "
            "log(size).",
            "",
        ]
        lines += _scaling_table(results.scaling)
    if results.concurrency:
        spec = concurrency_spec(cfg["concurrency_deltas"])
        lines += [
            "## Concurrent streams in one process",
            "",
            f"Each stream: {spec.label}, {spec.chunking_label} ({spec.wire_events} events). "
            "triostream: `AsyncAnthropic` clients, every `open_message_stream` in one nursery; "
            "the floor: `httpx.AsyncClient`s, one task per stream. All in one process, with "
            f"**one httpx pool per {PER_POOL} streams** (stream i on client i % k, "
            f"k = ceil(streams / {PER_POOL})) for both: on every request added to or removed "
            "from a pool, httpcore spends idle connections x connections, which at 100 "
            "connections a pool would dominate the figures. Connections are opened by an "
            "untimed round first and kept (no keep-alive expiry: with httpx's 5 s default, "
            "long passes would reconnect every stream). "
            f"Per count: {cfg['concurrency_rounds']} timed rounds (throughput is wire "
            "events per wall second over all streams), then "
            f"{cfg.get('concurrency_passes', 1)} tracemalloc passes per consumer, "
            "interleaved, then one live pass per consumer.",
            "",
            "- **peak**: growth of the tracemalloc peak over one pass, per stream (median, "
            "min-max over the passes). It depends on how the streams overlap in time (how many "
            "are alive, with everything received, when it is reached), so it can vary from "
            "pass to pass; triostream / floor is paired pass by pass.",
            "- **live**: every stream open at once and read to its end (triostream: every "
            "event and the final message; the floor: every event decoded), held at a barrier "
            "until the last arrives; the memory traced then, per stream. Deterministic, and "
            "triostream's worst case: it keeps the whole message and the event log (for late "
            "subscribers), the floor keeps nothing.",
            "",
        ]
        lines += _concurrency_table(results.concurrency)
    if figures:
        lines += ["## Plots", ""]
        lines += [f"![{title}]({name})" for title, name in figures]
        lines += [""]
    report = out / "README.md"
    report.write_text("\n".join(lines))
    _write_json(results, checks, out / "raw" / "results.json")
    return report


def _write_json(results: Results, checks: Sequence[Check], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        return str(value)

    data = {
        "config": results.config,
        "machine": results.machine,
        "specs": [s.key for s in results.specs],
        "runs": results.runs,
        "memory": {f"{c}|{s}": v for (c, s), v in results.memory.items()},
        "scaling_runs": results.scaling_runs,
        "scaling": results.scaling,
        "concurrency": results.concurrency,
        "checks": checks,
        "notes": results.notes,
    }
    path.write_text(json.dumps(data, default=plain, indent=1))
