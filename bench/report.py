"""Turn a pytest-benchmark JSON into a markdown table and PNG plots.

    python -m bench.report bench/results/RESULTS.json [--out docs/performance.md] [--plots DIR]

For every group (one workload) the table lists each implementation's median time and its
speed-up against the eager reference and the compiled reference measured in the same run;
for the fused ops it adds the achieved bandwidth as a fraction of the device's measured copy
bandwidth (bytes an ideal kernel moves / median time).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

BASELINES = ("reference", "reference-compiled")


def _impl(bench: dict) -> str:
    info = bench.get("extra_info", {})
    return info.get("variant") or info.get("backend") or bench["name"]


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def table(results: dict) -> str:
    groups: dict[str, list[dict]] = defaultdict(list)
    for bench in results["benchmarks"]:
        groups[bench["group"]].append(bench)
    machine = results.get("machine_info", {})
    facts = machine.get("ntm_fast", {})
    lines = [
        f"Device: {facts.get('cuda_device') or machine.get('cpu', {}).get('brand_raw', 'CPU')}; "
        f"torch {facts.get('torch')}, triton {facts.get('triton')}, "
        f"CPU threads {facts.get('cpu_threads')}; date {facts.get('date')}.",
        "",
        "| workload | implementation | median | vs eager reference | vs compiled reference "
        "| % of copy bandwidth |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for group in sorted(groups):
        medians = {_impl(b): b["stats"]["median"] for b in groups[group]}
        for bench in sorted(groups[group], key=lambda b: b["stats"]["median"]):
            impl, median = _impl(bench), bench["stats"]["median"]
            ratios = [
                f"{medians[base] / median:.2f}x" if base in medians else "-" for base in BASELINES
            ]
            info = bench.get("extra_info", {})
            bw = "-"
            if info.get("bytes") and info.get("copy_bandwidth") and info.get("direction") == "fwd":
                bw = f"{100 * info['bytes'] / median / info['copy_bandwidth']:.1f}%"
            cells = [group, impl, _fmt_time(median), *ratios, bw]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plots(results: dict, out_dir: Path) -> list[Path]:
    """Time against N (fused addressing) and against sequence length (training step)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {
        "time_vs_N.png": (
            "N (memory slots)",
            lambda i: i.get("op") == "address" and i.get("direction") == "fwd+bwd"
            and i.get("B") == 16 and i.get("W") == 20 and i.get("H") == 2,
            "N",
        ),
        "time_vs_T.png": (
            "sequence length T",
            lambda i: i.get("task") == "copy" and i.get("mode") == "train" and i.get("B") == 16,
            "T",
        ),
    }  # fmt: skip
    written = []
    for name, (xlabel, keep, key) in series.items():
        lines: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
        for bench in results["benchmarks"]:
            info = bench.get("extra_info", {})
            if keep(info):
                lines[(_impl(bench), info["device"])].append((info[key], bench["stats"]["median"]))
        if not lines:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for (impl, device), points in sorted(lines.items()):
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, marker="o", label=f"{impl} ({device})")
        ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="median time (s)")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("--out", type=Path, help="write the markdown table here (else stdout)")
    parser.add_argument("--plots", type=Path, help="directory for the PNG plots")
    parser.add_argument(
        "--strip-samples",
        action="store_true",
        help="rewrite RESULTS without the raw per-round samples (stats.data), to commit it",
    )
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"bench.report: cannot read {args.results}: {exc}", file=sys.stderr)
        return 1
    if args.strip_samples:
        for bench in results["benchmarks"]:
            bench["stats"].pop("data", None)
        args.results.write_text(json.dumps(results, indent=1))
    text = table(results)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
        for path in plots(results, args.plots):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
