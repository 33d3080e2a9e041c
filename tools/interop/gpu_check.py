#!/usr/bin/env python3
"""GPU check of the interop path (issue 19) -- NOT YET RUN ON A GPU; see docs/scale.md before trusting it.

Runs a checkpoint exported by Microsoft.ML.MemoryFormer (tools/interop/gpu/exported, the official fixture re-exported by
the library in the pipeline layout) through the official code's CUDA path and compares the logits with the fixture's
(which the .NET test asserts equal ours to 1e-5). Needs: one NVIDIA GPU, PyTorch with CUDA, nvcc and a C++ compiler
(the official memory_module builds its CUDA gather kernel with torch.utils.cpp_extension.load), no network, no .NET.

Steps, each recorded in the JSON report:
  1. environment (torch, CUDA, GPU name);
  2. torch.load of our export (pipeline layout) into the official model, strict;
  3. CUDA kernels, fp32: logits vs fixture (tolerance 1e-4; TF32 off);
  4. pure-torch path on CUDA (force_torch_op=True), fp32: logits vs fixture (1e-5);
  5. training step: gradients of every parameter through the CUDA kernels vs the pure-torch path on CUDA (1e-4);
  6. CUDA kernels, fp16 (the official configs train in fp16): logits vs fixture, reported with its error (informative, 2e-2).
"""
import argparse
import json
import os
import sys
import time
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import official_model  # noqa: E402
from make_fixture import CONFIG, TOKENS, relative_error  # noqa: E402


def build_without_ninja(name, sources):
    """torch.utils.cpp_extension.load needs ninja; without it, build the same extension with setuptools (no network)."""
    import importlib
    import tempfile
    from setuptools import setup
    from torch.utils.cpp_extension import BuildExtension, CUDAExtension
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or tempfile.mkdtemp()
    lib, tmp = os.path.join(root, name + "_lib"), os.path.join(root, name + "_tmp")
    setup(name=name, ext_modules=[CUDAExtension(name, sources)],
          cmdclass={"build_ext": BuildExtension.with_options(use_ninja=False)},
          script_args=["-q", "build_ext", "--build-lib", lib, "--build-temp", tmp])
    sys.path.insert(0, lib)
    return importlib.import_module(name)


BUILD = {}


def import_memory_layer_cuda(repo):
    """Official MemoryLayer with the real CUDA gather extension; the CPU-only extensions (built with -march=native) are stubbed."""
    import types
    import torch.utils.cpp_extension as cpp_extension
    real_load = cpp_extension.load

    def load(name, sources, *args, **kwargs):
        if name in ("ccs_cpu", "gather_add_cpu"):
            module = types.ModuleType(name)
            sys.modules[name] = module
            return module
        if cpp_extension.is_ninja_available():
            BUILD[name] = "torch.utils.cpp_extension.load (ninja)"
            module = real_load(name, sources, *args, **kwargs)
        else:
            BUILD[name] = "setuptools BuildExtension without ninja"
            module = build_without_ninja(name, sources)
        sys.modules[name] = module
        return module

    cpp_extension.load = load
    return official_model.import_memory_layer(repo, stub_extensions=False)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--official-repo", required=True)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--exported", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--dry-run-cpu", action="store_true",
                        help="exercise this script without a GPU: CPU, pure-torch path everywhere (proves nothing about CUDA)")
    args = parser.parse_args()
    device = "cpu" if args.dry_run_cpu else "cuda"
    report = {"script": "tools/interop/gpu_check.py", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "steps": []}

    def step(name, fn):
        t0 = time.time()
        entry = {"step": name}
        try:
            entry.update(fn() or {})
            entry.setdefault("ok", True)
        except Exception as e:  # record and go on: every step's outcome belongs in the report
            entry.update({"ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]})
        entry["seconds"] = round(time.time() - t0, 2)
        report["steps"].append(entry)
        print(json.dumps({k: v for k, v in entry.items() if k != "trace"}), flush=True)
        return entry

    step("environment", lambda: {"torch": torch.__version__, "cuda": torch.version.cuda, "available": torch.cuda.is_available(),
                                 "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                                 "ok": torch.cuda.is_available() or args.dry_run_cpu})
    report["dry_run_cpu"] = args.dry_run_cpu
    with open(os.path.join(args.fixture, "logits.json")) as f:
        expected = torch.tensor(json.load(f)["logits"], dtype=torch.float32)
    state = {}
    ctx = {}

    def load_export():
        state.update(official_model.load_exported(args.exported))
        return {"tensors": len(state)}

    step("torch.load our export (pipeline layout)", load_export)

    def build():
        if args.dry_run_cpu:
            ctx["MemoryLayer"] = official_model.import_memory_layer(args.official_repo, stub_extensions=True)
            return {"dry_run_cpu": True}
        ctx["MemoryLayer"] = import_memory_layer_cuda(args.official_repo)     # compiles the CUDA gather kernel (minutes)
        return {"built_with": dict(BUILD)}

    step("build the official CUDA extension", build)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if "MemoryLayer" not in ctx or (device == "cuda" and not torch.cuda.is_available()):
        report["ok"] = False
        with open(args.report, "w") as f:
            json.dump(report, f, indent=2)
        print(f"FAIL: cannot go on without a GPU and the official code; report in {args.report}")
        sys.exit(1)
    tokens = torch.tensor(TOKENS, device=device)

    def model(force_torch_op):
        m = official_model.GPT2Model(CONFIG, ctx["MemoryLayer"], force_torch_op=force_torch_op or args.dry_run_cpu)
        m.load_state_dict(state, strict=True)
        return m.to(device)

    def logits_check(force_torch_op, dtype, tolerance):
        def run():
            m = model(force_torch_op).to(dtype).eval()
            with torch.no_grad():
                out = m(tokens).float().cpu()
            err = relative_error(out, expected)
            return {"max_relative_error": err, "tolerance": tolerance, "ok": err <= tolerance}
        return run

    step("CUDA kernels fp32 logits vs fixture", logits_check(False, torch.float32, 1e-4))
    step("pure-torch path on CUDA fp32 logits vs fixture", logits_check(True, torch.float32, 1e-5))

    def gradients():
        grads = []
        for force in (False, True):
            m = model(force).train()
            loss = torch.nn.functional.cross_entropy(m(tokens).reshape(-1, CONFIG["padded_vocab_size"]).float(),
                                                     tokens.roll(-1, dims=1).reshape(-1))
            loss.backward()
            grads.append({n: p.grad.detach().float().cpu() for n, p in m.named_parameters() if p.grad is not None})
        worst = max(relative_error(grads[0][n], grads[1][n]) for n in grads[1])
        missing = sorted(set(grads[1]) - set(grads[0]))
        return {"parameters": len(grads[1]), "max_relative_error": worst, "missing_in_cuda": missing, "ok": worst <= 1e-4 and not missing}

    step("training step: CUDA-kernel gradients vs pure-torch gradients", gradients)
    fp16 = step("CUDA kernels fp16 logits vs fixture (informative)",
                logits_check(False, torch.float32 if args.dry_run_cpu else torch.float16, 2e-2))
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    required = [s for s in report["steps"] if s is not fp16]
    report["ok"] = all(s["ok"] for s in required)
    with open(args.report, "w") as f:
        json.dump(report, f, indent=2)
    print(("PASS" if report["ok"] else "FAIL") + f": report in {args.report}")
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
