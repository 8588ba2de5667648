"""The GPU-readiness tools (issue 17) on the CPU: the launch recorder, the ahead-of-time Triton
compile and its error message, the CUDA resource parser and the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))

from tools import cuda_resources, gpu_checks, gpu_report, triton_aot, triton_record  # noqa: E402


def test_recorder_sweeps_the_launchers_on_the_meta_device(tmp_path):
    runs = {k: kernel.run for k, kernel in triton_record.kernel_objects()}
    state = (triton_record._out, triton_record._dry)  # the CI run records with the plugin
    triton_record.sweep([("read", (2, 3, 7, 5, 3), torch.float32)], tmp_path)
    assert (triton_record._out, triton_record._dry) == state
    assert runs == {k: kernel.run for k, kernel in triton_record.kernel_objects()}
    recs = {r["kernel"].split(":")[1]: r for r in triton_record.load([tmp_path])}
    assert set(recs) == {"read_fwd_kernel", "read_bwd_kernel"}
    fwd = recs["read_fwd_kernel"]
    assert fwd["args"]["p_m"] == {"tensor": "float32", "align16": True}
    assert fwd["args"]["N"] == {"int": 7} and fwd["args"]["CDT"] == {"tl_dtype": "fp32"}
    assert "num_warps" in fwd["options"]


def test_every_kernel_module_is_hooked():
    names = {k.split(":")[1] for k, _ in triton_record.kernel_objects()}
    assert {"address_fwd_kernel", "address_bwd_kernel", "write_bwd_kernel"} <= names
    assert "key_norm" in names  # device helpers too (hooked, never launched): nothing is listed


def _record(bn: int) -> dict:
    t = {"tensor": "float32", "align16": True}
    args = {n: t for n in ("p_wc", "p_wp", "p_gate", "p_out")}
    args.update(N={"int": 8}, BN={"int": bn}, CDT={"tl_dtype": "fp32"})
    key = "ntm_fast._kernels.interpolate:interpolate_fwd_kernel"
    return {"kernel": key, "args": args, "options": {"num_warps": {"int": 2}}, "test": "t::x"}


def test_aot_compiles_for_hopper_and_names_a_failure(tmp_path):
    """One good specialisation and one that cannot compile (a block of 3 is not a power of
    two): exit 1, the good one's registers recorded, the log names kernel, block, arch."""
    recs = tmp_path / "r.jsonl"
    recs.write_text("\n".join(json.dumps(_record(bn)) for bn in (8, 3)) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = tmp_path / "t.json"
    cmd = [sys.executable, "tools/triton_aot.py", str(recs), "--arch", "90", "--jobs", "1"]
    p = subprocess.run([*cmd, "--json", str(out)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert p.returncode == 1, p.stdout + p.stderr
    assert "COMPILE ERROR interpolate_fwd_kernel[*fp32 BN=3" in p.stderr
    assert "for sm_90 (launched by t::x)" in p.stderr
    good = [r for r in json.loads(out.read_text()) if "error" not in r]
    assert len(good) == 1 and good[0]["regs"] > 0 and good[0]["spill_stores"] == 0


PTXAS_LOG = """ptxas info    : Compiling entry function '_Z9my_kernelIfEvPKT_' for 'sm_80'
ptxas info    : Function properties for _Z9my_kernelIfEvPKT_
    16 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 2048 bytes smem, 380 bytes cmem[0]
ptxas info    : Compiling entry function '_Z9my_kernelIdEvPKT_' for 'sm_80'
ptxas info    : Function properties for _Z9my_kernelIdEvPKT_
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 40 registers, used 0 barriers, 380 bytes cmem[0]
"""


def test_cuda_ptxas_report_and_checks():
    rs = cuda_resources.parse_ptxas(PTXAS_LOG, 80)
    assert [(r["kernel"], r["regs"], r["spill_stores"], r["smem"]) for r in rs] == [
        ("my_kernel<float>", 255, 8, 2048),
        ("my_kernel<double>", 40, 0, 0),
    ]
    for r in rs:
        r.update(source="x.cu", threads=512)
    problems = cuda_resources.check(rs[0])
    assert any(p.startswith("SPILL") for p in problems)
    assert any("255 registers x 512 threads" in p for p in problems)
    assert cuda_resources.check(rs[1]) == []  # double: spills reported only; 40 x 512 fits


def test_cuda_launch_block_sizes_from_source():
    src = """constexpr int kThreads = 256;
    const dim3 grid(B, 4), block(32, 8);
    a_kernel<T, A><<<unsigned(B * H), kThreads, 0, stream>>>(x);
    b_kernel<T><<<grid, block, 0, stream>>>(x);
    c_kernel<<<n, 128>>>(x);
    d_kernel<T><<<n, threads_for(n), 0, stream>>>(x);"""
    assert cuda_resources.launch_threads(src) == {
        "a_kernel": 256, "b_kernel": 256, "c_kernel": 128, "d_kernel": None,
    }  # fmt: skip


def test_cuda_launch_block_size_from_a_shared_header(tmp_path):
    """The row kernels' block size is a constant of csrc/cuda/device.cuh, included by each op's
    .cu (and included twice here: each header is read once)."""
    (tmp_path / "device.cuh").write_text("#pragma once\nconstexpr int kThreads = 256;\n")
    (tmp_path / "rows.cuh").write_text('#include "device.cuh"\n')
    src = tmp_path / "op.cu"
    src.write_text('#include "rows.cuh"\n#include "device.cuh"\n#include <cstdint>\n'
                   "k_kernel<D, A><<<unsigned(B * H), kThreads, 0, stream>>>(x);\n")  # fmt: skip
    text = cuda_resources.with_headers(src)
    assert text.count("kThreads = 256") == 1
    assert cuda_resources.launch_threads(text) == {"k_kernel": 256}


def test_cuda_flags_are_torchs():
    flags = cuda_resources.torch_nvcc_flags({"macros": ["-DX=1"], "nvcc": ["-O3"], "name": "_C"})
    for f in ("-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
              "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__",
              "-DX=1", "-O3", "-std=c++17"):  # fmt: skip
        assert f in flags


def test_setup_extension_is_read_from_setup_py():
    if cuda_resources.shutil.which("nvcc") is None and "NVCC" not in os.environ:
        pytest.skip("nvcc not installed")
    ext = cuda_resources.setup_extension()
    assert "csrc/cuda/address.cu" in ext["sources"] and "-DNTM_FAST_WITH_CUDA=1" in ext["macros"]


def test_every_cuda_source_is_built_and_compile_checked():
    """setup.py's CUDA extension takes every .cu and .cpp under csrc/cuda/ (the per-op and the
    whole-sequence kernels, drivers and bindings), and the CI compile check every .cu."""
    if cuda_resources.shutil.which("nvcc") is None and "NVCC" not in os.environ:
        pytest.skip("nvcc not installed")
    ext = cuda_resources.setup_extension()
    cuda_dir = cuda_resources.ROOT / "csrc/cuda"
    files = sorted(cuda_dir.glob("*.cu")) + sorted(cuda_dir.glob("*.cpp"))
    wanted = {str(f.relative_to(cuda_resources.ROOT)) for f in files}
    assert {
        "csrc/cuda/sequence_fwd.cu",
        "csrc/cuda/sequence_bwd.cu",
        "csrc/cuda/sequence_kernels.cu",
        "csrc/cuda/sequence_binding.cpp",
    } <= wanted
    assert wanted <= set(ext["all_sources"]), wanted - set(ext["all_sources"])
    cu = {w for w in wanted if w.endswith(".cu")}
    assert cu <= set(cuda_resources.sources(ext))


def test_report_renders_both_sections():
    tr = [{"kernel": "m:k_kernel", "arch": a, "desc": "k_kernel[*fp32 BN=64 BW=8 num_warps=4]",
           "dtype": "float32", "regs": 40, "spill_stores": 0, "spill_loads": 0,
           "stack": 16, "smem": 512, "num_warps": 4} for a in (80, 90)]  # fmt: skip
    cu = [{"kernel": "x_kernel<float, float>", "element": "float", "source": "a.cu", "arch": 90,
           "threads": 256, "regs": 32, "spill_stores": 0, "spill_loads": 0, "stack": 0,
           "smem": 0}]  # fmt: skip
    text = gpu_report.render(tr, cu)
    header = "| kernel | data | most registers at | sm_80 regs | sm_80 spill B | sm_80 stack B |"
    assert header in text  # a column per number: regs, spill, stack, smem for each arch
    assert "| k_kernel | float32 | BN=64 BW=8 w4 | 40 | 0 | 16 | 512 | 40 | 0 | 16 | 512 |" in text
    assert "| `x_kernel` | 256 | 32 / - / - / - | 0 | 0 |" in text
    assert (
        "| proof | `tests/ops/test_backend_ops.py -k native-cuda` |" in text
    )  # the GPU-only tests


def _compiled(dtype: str, spill: int) -> dict:
    """One compile result as tools/triton_aot.py writes it: 4 B spilled at 64 registers of 255
    (far below the cap, as ptxas did when it aimed for occupancy)."""
    return {"kernel": "m:k_kernel", "arch": 80, "desc": f"k_kernel[{dtype}]", "dtype": dtype,
            "test": "t::x", "regs": 64, "spill_stores": spill, "spill_loads": spill,
            "stack": spill, "smem": 0, "num_warps": 8, "seconds": 1.0}  # fmt: skip


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_any_spill_in_float32_or_half_fails(dtype):
    msgs, notes = gpu_checks.failures([_compiled(dtype, 4)])
    assert notes == [] and len(msgs) == 1
    assert msgs[0].startswith(f"SPILL k_kernel[{dtype}] for sm_80: 4 B spill stores")
    assert gpu_checks.failures([_compiled(dtype, 0)]) == ([], [])


def test_float64_spill_is_reported_not_failed():
    msgs, notes = gpu_checks.failures([_compiled("float64", 2048)])
    assert msgs == [] and len(notes) == 1 and "2048 B spill stores" in notes[0]


@pytest.mark.parametrize(("dtype", "rc"), [("float32", 1), ("bfloat16", 1), ("float64", 0)])
def test_aot_exit_status_follows_the_spill_rule(dtype, rc, tmp_path, monkeypatch, capsys):
    """tools/triton_aot.py's exit status on a compile that spilled 4 B (compile faked)."""
    for k in ("TRITON_INTERPRET", "TRITON_CACHE_DIR", "TRITON_DUMP_PTXAS_LOG"):
        monkeypatch.setenv(k, os.environ.get(k, ""))  # main() changes them: restored after
    monkeypatch.setattr(triton_aot, "run", lambda recs, archs, jobs: [_compiled(dtype, 4)])
    recs = tmp_path / "r.jsonl"
    recs.write_text(json.dumps(_record(8)) + "\n")
    assert triton_aot.main([str(recs), "--arch", "80", "--jobs", "1"]) == rc
    err = capsys.readouterr().err
    assert ("SPILL k_kernel" in err) == (rc == 1)


def test_load_and_plan_keep_every_source_of_a_launch(tmp_path):
    """A launch made by a test and by the meta sweep is compiled once and listed under both,
    so the report can be rendered from the sweep alone (the same on every run)."""
    other_n = _record(8)
    other_n["args"]["N"] = {"int": 9}  # another launch, the same specialisation as N = 8
    folders = {"launches": [_record(8), _record(16), _record(32)], "sweep": [other_n, _record(16)]}
    for name, recs in folders.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    recs = triton_record.load([tmp_path / "launches", tmp_path / "sweep"])
    by_launch = {(r["args"]["BN"]["int"], r["args"]["N"]["int"]): r["sources"] for r in recs}
    both = ["launches", "sweep"]
    assert by_launch == {
        (8, 8): ["launches"],
        (16, 8): both,
        (32, 8): ["launches"],
        (8, 9): ["sweep"],
    }
    # plan() binds as a compiled launch would: in a process without the interpreter
    (tmp_path / "recs.json").write_text(json.dumps(recs + recs))  # repeated: one job each
    code = (
        "import json, sys; from tools import triton_aot; "
        f"jobs = triton_aot.plan(json.load(open({str(tmp_path / 'recs.json')!r})), [80]); "
        "print(json.dumps(sorted([j['args']['BN']['int'], j['sources']] for j in jobs)))"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [[8, both], [16, both], [32, ["launches"]]]


def test_sweep_grid_has_every_op_in_every_dtype():
    from ntm_fast.op_table import OP_NAMES

    cases = triton_record.grid_cases()
    assert {(op, str(dt).removeprefix("torch.")) for op, _, dt in cases} == {
        (op, dt) for op in OP_NAMES for dt in ("float64", "float32", "float16", "bfloat16")
    }
    dims = {d for _, d, _ in cases}
    assert any(n > 1024 for _, _, n, _, _ in dims)  # the tiled address path (N > one block)
    assert any(n % 16 for _, _, n, _, _ in dims) and any(h == 1 for _, h, _, _, _ in dims)


def test_report_source_filter_and_check_status(tmp_path, capsys):
    """``--source`` lists only that folder's launches; ``--check`` exits 1 on any difference
    and 0 when the file is current."""
    runs = ((8, 40, ["launches", "sweep"]), (16, 90, ["launches"]))
    res = [{**_compiled("float32", 0), "desc": f"k_kernel[*fp32 BN={bn} num_warps=4]",
            "regs": regs, "sources": src} for bn, regs, src in runs]  # fmt: skip
    (tmp_path / "t.json").write_text(json.dumps(res))
    args = ["--triton", str(tmp_path / "t.json"), "--source", "sweep"]
    assert gpu_report.main([*args, "--out", str(tmp_path / "r.md")]) == 0
    text = (tmp_path / "r.md").read_text()
    assert "| k_kernel | float32 | BN=8 w4 | 40 |" in text and "BN=16" not in text
    assert "1 specialisations" in text
    assert gpu_report.main([*args, "--check", str(tmp_path / "r.md")]) == 0
    assert "is up to date" in capsys.readouterr().out
    assert gpu_report.main([args[0], args[1], "--check", str(tmp_path / "r.md")]) == 1
    assert "+| k_kernel | float32 | BN=16 w4 | 90 |" in capsys.readouterr().out


def test_report_lists_spills_once_per_kernel_and_dtype():
    """Two float64 specialisations of one kernel spill: one line, the count and the worse."""
    runs = [(bn, spill, arch) for bn, spill in ((64, 8), (128, 40)) for arch in (80, 90)]
    res = [{**_compiled("float64", spill), "desc": f"k_kernel[*fp64 BN={bn} num_warps=8]",
            "regs": 255, "arch": arch} for bn, spill, arch in runs]  # fmt: skip
    text = gpu_report.render(res, None)
    assert "- k_kernel float64: 2, most at BN=128 w8: sm_80: 255/255 regs, 40/40 B; " in text
    assert text.count("- k_kernel float64:") == 1
