"""The figures: CPU per event per consumer (bars), tool-input scaling (log-log), concurrency."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .concurrency import ConcurrencyRun
from .measure import Run, summarize
from .scaling import ScalingResult
from .streams import StreamSpec

__all__ = ["plot_concurrency", "plot_cpu_per_event", "plot_scaling"]

_COLORS = {
    "floor": "#7f7f7f",
    "triostream": "#1f77b4",
    "triostream +3 readers": "#6baed6",
    "triostream +3 subscribe()": "#c6dbef",
    "triostream sync": "#17becf",
    "anthropic async": "#d62728",
    "anthropic sync": "#ff9896",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_cpu_per_event(
    runs: Sequence[Run], specs: Sequence[StreamSpec], consumers: Sequence[str], path: Path
) -> None:
    """Grouped bars, one panel per chunking: median CPU µs/event, whiskers at min and max."""
    plt = _pyplot()
    chunkings = sorted({s.chunking for s in specs}, key=lambda c: (c != "event", str(c)))
    fig, axes = plt.subplots(len(chunkings), 1, figsize=(12, 4.2 * len(chunkings)), squeeze=False)
    width = 0.8 / max(len(consumers), 1)
    for ax, chunking in zip(axes[:, 0], chunkings, strict=True):
        group = [s for s in specs if s.chunking == chunking]
        for i, name in enumerate(consumers):
            xs, ys, lo, hi, hatches = [], [], [], [], []
            for j, spec in enumerate(group):
                mine = [r for r in runs if r.consumer == name and r.stream == spec.key]
                if not mine:
                    continue
                s = summarize([r.cpu_per_event_us for r in mine])
                xs.append(j + (i - (len(consumers) - 1) / 2) * width)
                ys.append(s.median)
                lo.append(s.median - s.low)
                hi.append(s.high - s.median)
                hatches.append("//" if any(r.estimated for r in mine) else "")
            bars = ax.bar(
                xs, ys, width, yerr=[lo, hi], label=name, color=_COLORS.get(name), capsize=2
            )
            for bar, hatch in zip(bars, hatches, strict=True):
                bar.set_hatch(hatch)
        ax.set_yscale("log")
        ax.set_xticks(range(len(group)), [s.label for s in group], fontsize=8)
        ax.set_ylabel("CPU µs per event (log)")
        title = group[0].chunking_label if group else str(chunking)
        ax.set_title(f"CPU per event, {title} (median, min-max; hatched: SDK time-boxed, est.)")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scaling(result: ScalingResult, path: Path) -> None:
    """Total CPU seconds against tool-input size, log-log, with the fitted exponents."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    sizes = result.sizes
    for name, costs in result.cpu.items():
        flags = result.estimated[name]
        exponent = result.exponent.get(name)
        label = name if exponent is None else f"{name} (exponent {exponent:.2f})"
        color = _COLORS.get(name)
        ax.plot(sizes, costs, "-", color=color, alpha=0.6)
        measured = [(x, y) for x, y, e in zip(sizes, costs, flags, strict=True) if not e]
        estimated = [(x, y) for x, y, e in zip(sizes, costs, flags, strict=True) if e]
        if measured:
            ax.plot(*zip(*measured, strict=True), "o", color=color, label=label)
        if estimated:
            ax.plot(
                *zip(*estimated, strict=True),
                "o",
                mfc="none",
                color=color,
                label=f"{name}: estimated (time-boxed)",
            )
    if sizes:
        ref = result.cpu.get("triostream")
        if ref:
            ax.plot(
                sizes,
                [ref[0] * x / sizes[0] for x in sizes],
                ":",
                color="black",
                alpha=0.4,
                label="linear (from the first triostream point)",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tool input size (bytes), ~20-byte partial_json deltas, 16 KB chunks")
    ax.set_ylabel("CPU seconds for the whole stream")
    ax.set_title("Tool-input accumulation: total cost against size (log-log)")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _of(
    runs: Sequence[ConcurrencyRun], kind: str, n: int, figure: Callable[[ConcurrencyRun], float]
) -> list[float]:
    return [figure(r) for r in runs if r.streams == n and r.kind == kind]


def plot_concurrency(runs: Sequence[ConcurrencyRun], path: Path) -> None:
    """Throughput, and memory per stream (peak and live), against the number of streams."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    names = sorted({r.consumer for r in runs})
    for name in names:
        color = _COLORS.get(name)
        mine = [r for r in runs if r.consumer == name]
        counts = sorted({r.streams for r in mine})
        rate = [
            summarize(_of(mine, "timed", n, lambda r: r.events_per_second)).median for n in counts
        ]
        left.plot(counts, rate, "o-", label=name, color=color)
        peaks = [
            summarize(_of(mine, "peak", n, lambda r: r.memory_per_stream / 1024)) for n in counts
        ]
        right.errorbar(
            counts,
            [p.median for p in peaks],
            yerr=[[p.median - p.low for p in peaks], [p.high - p.median for p in peaks]],
            fmt="o-",
            capsize=3,
            color=color,
            label=f"{name}: peak (median, min-max)",
        )
        live = [
            summarize(_of(mine, "live", n, lambda r: r.memory_per_stream / 1024)).median
            for n in counts
        ]
        right.plot(counts, live, "s--", color=color, alpha=0.8, label=f"{name}: live")
    every = sorted({r.streams for r in runs})
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(every, [f"{n:,}" for n in every])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("concurrent streams")
        ax.grid(which="both", alpha=0.3)
        ax.legend(fontsize=8)
    left.set_ylabel("wire events per second (all streams)")
    left.set_title("Throughput")
    right.set_ylim(bottom=0)
    right.set_ylabel("KiB per stream (tracemalloc)")
    right.set_title("Memory per stream: peak growth; live = held, read to the end")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
