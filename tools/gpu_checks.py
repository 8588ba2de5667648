"""Resource rules shared by the Triton and CUDA checks: per-SM limits, the register cap and
which spills fail.

Any spill fails unless the kernel's data are float64 (used by the tests; reported only). The
launchers give ptxas the block's register bound (``maxnreg``, kernels/utils.py): without it
ptxas spilled a few bytes far below the cap to aim for occupancy, which is no excuse either.
"""

from __future__ import annotations

from typing import Any

#: Per-SM limits: register file (32-bit registers), the most shared memory one block may use
#: (opt-in), threads per block.
LIMITS = {
    80: {"regs": 65536, "smem": 166912, "threads": 1024},
    86: {"regs": 65536, "smem": 101376, "threads": 1024},
    89: {"regs": 65536, "smem": 101376, "threads": 1024},
    90: {"regs": 65536, "smem": 232448, "threads": 1024},
}


def register_cap(r: dict[str, Any]) -> int:
    """The most registers per thread ptxas may use for the block (255, or fewer when the
    block's threads x registers would not fit the register file)."""
    per_thread = LIMITS[r["arch"]]["regs"] // (32 * r["num_warps"])
    return min(255, per_thread - per_thread % 8)


def check_fit(r: dict[str, Any]) -> list[str]:
    """Why a compiled kernel could not be launched on one SM of its architecture."""
    lim = LIMITS[r["arch"]]
    threads = 32 * r["num_warps"]
    per_warp = -(-r["regs"] * 32 // 256) * 256  # registers are allocated per warp, by 256
    problems = []
    if threads > lim["threads"]:
        problems.append(f"{threads} threads per block > {lim['threads']}")
    if r["num_warps"] * per_warp > lim["regs"]:
        problems.append(f"{r['regs']} registers x {threads} threads > {lim['regs']} per SM")
    if r["smem"] > lim["smem"]:
        problems.append(f"{r['smem']} B shared memory > {lim['smem']} B per block")
    return problems


def failures(results: list[dict[str, Any]]) -> tuple[list, list]:
    """``(problems, notes)``: what fails the check, and float64 spills (reported only)."""
    msgs, notes = [], []
    for r in results:
        where = f"{r['desc']} for sm_{r['arch']}"
        if "error" in r:
            by = f" (launched by {r['test']})" if r.get("test") else ""
            err = r["error"].replace("\n", "\n    ")
            msgs.append(f"COMPILE ERROR {where}{by}:\n    {err}")
            continue
        if r["spill_stores"] or r["spill_loads"]:
            line = (f"SPILL {where}: {r['spill_stores']} B spill stores, {r['spill_loads']} B "
                    f"loads at {r['regs']}/{register_cap(r)} registers "
                    f"({r['dtype']} data)")  # fmt: skip
            (notes if r["dtype"] == "float64" else msgs).append(line)
        msgs += [f"DOES NOT FIT {where}: {p}" for p in check_fit(r)]
    return msgs, notes
