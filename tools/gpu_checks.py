"""Resource rules shared by the Triton and CUDA checks: per-SM limits, the register cap and
which spills fail.

A spill fails when the kernel's data are not float64 and ptxas spilled at the register cap
(register pressure: the block's threads x registers fill the register file, or 255 per
thread). ptxas also spills a few bytes below the cap when it aims for occupancy (seen at 32
registers in 2-warp kernels and at 80 in 8-warp ones on sm_80); those, and float64 spills,
are reported only, unless ``any_spill``.
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


def failures(results: list[dict[str, Any]], any_spill: bool = False) -> tuple[list, list]:
    """``(problems, notes)``: what fails the check, and spills that are only reported."""
    msgs, notes = [], []
    for r in results:
        where = f"{r['desc']} for sm_{r['arch']}"
        if "error" in r:
            by = f" (launched by {r['test']})" if r.get("test") else ""
            err = r["error"].replace("\n", "\n    ")
            msgs.append(f"COMPILE ERROR {where}{by}:\n    {err}")
            continue
        if r["spill_stores"]:
            at_cap = r["regs"] > register_cap(r) - 8
            line = (f"SPILL {where}: {r['spill_stores']} B spill stores, {r['spill_loads']} B "
                    f"loads at {r['regs']} registers ({r['dtype']} data"
                    f"{'' if at_cap else ', below the register cap'})")  # fmt: skip
            fails = r["dtype"] != "float64" and (at_cap or any_spill)
            (msgs if fails else notes).append(line)
        msgs += [f"DOES NOT FIT {where}: {p}" for p in check_fit(r)]
    return msgs, notes
