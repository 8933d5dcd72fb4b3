"""The steps of ``scripts/gpu_check.sh``, one per call, each writing one JSON object:

- ``environment``: Python, torch, CUDA, cupy, numba, Lightning and FFCV versions (or why not
  importable), the GPUs, and whether ``operations`` imports;
- ``cuda_tests``: every case of ``tests/operations/device/cuda_cases.py`` (pass, fail, or
  skipped with its reason; no pytest needed);
- ``device_bench``: ``benchmarks/device_bench.py`` on cuda:0 (float16 and bfloat16);
- ``device_stage``: ``benchmarks/device_stage_bench.py`` on cuda:0;
- ``merge``: the steps' files (and the shell's exit codes) into one JSON file, a summary on
  stdout, exit 1 when a step failed or ran out of time.

Steps that need CUDA are "skipped" with the reason where it is absent. Needs only torch,
numba and Lightning (cupy for the fused kernel); no FFCV, no build.

    python scripts/gpu_check.py cuda_tests --out cuda_tests.json
"""
import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

STEPS = ("environment", "cuda_tests", "device_bench", "device_stage")
BATCH, SIZE = 256, 224


def version_of(module: str) -> str:
    """The module's version, or why it does not import."""
    try:
        return getattr(importlib.import_module(module), "__version__", "unknown")
    except Exception as exc:  # noqa: BLE001  (any import failure is a finding to report)
        return f"not importable ({type(exc).__name__}: {exc})"


def cuda_missing():
    import torch

    return None if torch.cuda.is_available() else "CUDA is not available (torch.cuda.is_available() is False)"


def environment() -> dict:
    import torch

    import operations  # noqa: F401  (first: it sets up Numba's cache before FFCV imports)
    from operations.ffcv_api import FFCV_MISSING

    return {"status": "ok", "python": platform.python_version(), "platform": platform.platform(),
            "versions": {name: version_of(name) for name in
                         ("torch", "numba", "numpy", "cupy", "lightning", "ffcv")},
            "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            "operations": {"imports": True, "ffcv": FFCV_MISSING or "FFCV imported"}}


def cuda_tests() -> dict:
    from tests.operations.device.cuda_cases import CASES, skip_reason

    cases = {}
    for name, (needs, check) in CASES.items():
        reason = skip_reason(needs)
        if reason is not None:
            cases[name] = {"status": "skipped", "reason": reason}
            continue
        start = time.perf_counter()
        try:
            check()
            cases[name] = {"status": "passed"}
        except Exception:  # noqa: BLE001  (a failed case is reported, the others still run)
            lines = traceback.format_exc().strip().splitlines()
            cases[name] = {"status": "failed", "error": "\n".join(lines[-6:])}
        cases[name]["seconds"] = round(time.perf_counter() - start, 2)
    statuses = [case["status"] for case in cases.values()]
    status = "failed" if "failed" in statuses else \
        "passed" if "passed" in statuses else "skipped"
    found = {"status": status, "counts": {s: statuses.count(s) for s in sorted(set(statuses))},
             "cases": cases}
    if status == "skipped":
        found["reason"] = "; ".join(sorted({case["reason"] for case in cases.values()}))
    return found


def device_bench() -> dict:
    why = cuda_missing()
    if why:
        return {"status": "skipped", "reason": why}
    import torch
    import device_bench as bench

    return {"status": "ok", "runs": [bench.measure(torch.device("cuda:0"), BATCH, SIZE, 10, dtype)
                                     for dtype in ("float16", "bfloat16")]}


def device_stage() -> dict:
    why = cuda_missing()
    if why:
        return {"status": "skipped", "reason": why}
    import torch
    import device_stage_bench as bench

    return {"status": "ok", **bench.measure(torch.device("cuda:0"), BATCH, SIZE, 10, "float16")}


def summary_line(name: str, part: dict) -> str:
    status = part.get("status", "?")
    if name == "cuda_tests" and "counts" in part:
        counts = ", ".join(f"{n} {s}" for s, n in part["counts"].items())
        reasons = sorted({c["reason"] for c in part["cases"].values() if "reason" in c})
        failed = [n for n, c in part["cases"].items() if c["status"] == "failed"]
        return (f"{name}: {status} ({counts})" + (f"; failed: {', '.join(failed)}" if failed else "")
                + "".join(f"\n    skipped: {reason}" for reason in reasons))
    if name == "device_bench" and status == "ok":
        return f"{name}: ok " + "; ".join(
            f"{run['dtype']}: fused {run['results']['fused']['GB/s']:.1f} GB/s = "
            f"{100 * run['results']['fused']['fraction_of_copy']:.0f}% of copy, "
            f"{run['speedups']['fused_vs_separate_torch']:.1f}x separate torch ops"
            for run in part["runs"])
    if name == "device_stage" and status == "ok":
        return (f"{name}: ok, whole stage {part['results']['stage']['images/s']:.0f} images/s "
                f"at {part['batch_size']} x {part['size']} px")
    if name == "environment" and status == "ok":
        return (f"{name}: ok, python {part['python']}, torch {part['versions']['torch']}, "
                f"CUDA {part['torch_cuda']}, GPUs {part['gpus'] or 'none'}; "
                f"{part['operations']['ffcv']}")
    return f"{name}: {status}" + (f" ({part['reason']})" if "reason" in part else "")


def merge(parts: Path, out: Path, codes: dict, limits: dict) -> int:
    """One JSON file from the steps' files; a step without a file ran out of time or crashed."""
    steps = {}
    for name in STEPS:
        path = parts / f"{name}.json"
        if path.is_file():
            steps[name] = json.loads(path.read_text())
        elif codes.get(name) == 124:
            steps[name] = {"status": "failed", "reason": f"timed out after {limits.get(name)} s"}
        else:
            steps[name] = {"status": "failed",
                           "reason": f"exited with status {codes.get(name)} and wrote no result"}
    ok = all(part["status"] != "failed" for part in steps.values())
    skipped = {name: part["reason"] for name, part in steps.items()
               if part["status"] == "skipped"}
    result = {"ok": ok, "skipped": skipped, "steps": steps}
    out.write_text(json.dumps(result, indent=2) + "\n")
    for name in STEPS:
        print(summary_line(name, steps[name]))
    print(f"gpu_check: {'ok' if ok else 'FAILED'}; wrote {out}")
    return 0 if ok else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=STEPS + ("merge",))
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--parts", type=Path, help="merge: the folder of the steps' files")
    parser.add_argument("--codes", default="", help="merge: step=exit_code,... from the shell")
    parser.add_argument("--limits", default="", help="merge: step=seconds,... from the shell")
    args = parser.parse_args(argv)
    if args.step == "merge":
        pairs = lambda text: {k: int(v) for k, v in (p.split("=") for p in text.split(",") if p)}  # noqa: E731
        return merge(args.parts, args.out, pairs(args.codes), pairs(args.limits))
    try:
        part = globals()[args.step]()
    except Exception:  # noqa: BLE001  (the step's error goes into the JSON, not only stderr)
        traceback.print_exc()
        part = {"status": "failed", "reason": traceback.format_exc().strip().splitlines()[-1]}
    args.out.write_text(json.dumps(part, indent=2) + "\n")
    return 1 if part["status"] == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
