#!/usr/bin/env python3
"""Builds (or checks against) the interop fixture with the official MemoryFormer code's pure-torch path.

  python3 make_fixture.py --official-repo ~/MemoryFormer --out ../../test/Microsoft.ML.MemoryFormer.Tests/Interop/Fixtures
      writes official/global_step0/mp_rank_00_model_states.pt (+ latest) and logits.json for a tiny config.
  python3 make_fixture.py --official-repo ~/MemoryFormer --fixture <Fixtures> --verify <exported checkpoint or folder>
      loads a checkpoint exported by Microsoft.ML.MemoryFormer with torch.load into the official model (strict) and
      compares its logits with the fixture's.
See README.md.
"""
import argparse
import json
import os
import random
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from official_model import GPT2Model, import_memory_layer, load_exported  # noqa: E402

# d = 64, tau = 2 (K = 32), Memory Block hidden K*(tau+2) = 128: widths are multiples of 64 and K is even, as the
# official CUDA gather kernel requires, so the GPU check can run the same model.
CONFIG = {
    "padded_vocab_size": 64, "hidden_size": 64, "num_layers": 2, "num_attention_heads": 2, "code_length": 2,
    "seq_length": 32, "max_position_embeddings": 32, "rotary_pct": 0.25, "rotary_emb_base": 10000, "rms_norm_epsilon": 1e-8,
}
TOKENS = [[1, 5, 9, 33, 2, 61, 17, 17, 40, 8, 0, 63], [7, 7, 7, 12, 50, 3, 29, 44, 1, 58, 21, 30]]


def relative_error(a, b):
    return (a - b).abs().max().item() / max(b.abs().max().item(), 1e-30)


def build(official_repo, device="cpu"):
    cuda = device != "cpu"
    MemoryLayer = import_memory_layer(official_repo, stub_extensions=not cuda)
    return GPT2Model(CONFIG, MemoryLayer, force_torch_op=not cuda)


def make(args):
    torch.manual_seed(20241118)
    model = build(args.official_repo)
    with torch.no_grad():                                       # make every parameter matter: no ones/zeros left
        for name, p in model.named_parameters():
            if name.endswith("scale") or name.endswith("mlp.1.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
            elif name.endswith("word_embeddings.weight"):
                p.copy_(torch.randn_like(p))
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor(TOKENS))
    folder = os.path.join(args.out, "official", "global_step0")
    os.makedirs(folder, exist_ok=True)
    args_dict = {k: CONFIG[k] for k in ("num_layers", "hidden_size", "num_attention_heads", "max_position_embeddings", "padded_vocab_size")}
    args_dict["model_parallel_size"] = 1
    # The dict DeepSpeed + GPT-NeoX (megatron/checkpointing.py save_ds_checkpoint) write, RNG states included.
    state = {"module": model.state_dict(), "buffer_names": [], "optimizer": None, "lr_scheduler": None,
             "sparse_tensor_module_names": set(), "skipped_steps": 0, "global_steps": 0, "global_samples": 0,
             "dp_world_size": 1, "mp_world_size": 1, "ds_config": {"train_micro_batch_size_per_gpu": 1}, "ds_version": "0.0.0",
             "iteration": 0, "args": args_dict, "random_rng_state": random.getstate(), "np_rng_state": np.random.get_state(),
             "torch_rng_state": torch.get_rng_state()}
    torch.save(state, os.path.join(folder, "mp_rank_00_model_states.pt"))
    with open(os.path.join(args.out, "official", "latest"), "w") as f:
        f.write("global_step0")
    with open(os.path.join(args.out, "logits.json"), "w") as f:
        json.dump({"generator": "tools/interop/make_fixture.py (official memory_module, force_torch_op=True, CPU, fp32)",
                   "torch": torch.__version__, "config": CONFIG, "tokens": TOKENS, "logits": logits.tolist()}, f)
    print(f"wrote {folder} and logits.json; logits {tuple(logits.shape)}, max |logit| {logits.abs().max().item():.3f}")


def verify(args, device="cpu"):
    with open(os.path.join(args.fixture, "logits.json")) as f:
        expected = torch.tensor(json.load(f)["logits"], dtype=torch.float32)
    model = build(args.official_repo, device)
    model.load_state_dict(load_exported(args.verify), strict=True)
    model.to(device).eval()
    if device != "cpu":
        torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        logits = model(torch.tensor(TOKENS, device=device)).float().cpu()
    err = relative_error(logits, expected)
    ok = err <= args.tolerance
    print(f"{'OK' if ok else 'MISMATCH'}: {args.verify} on {device}: max relative error {err:.3e} (tolerance {args.tolerance:g})")
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-repo", required=True, help="checkout of github.com/C0-Design/MemoryFormer (needs memory_module/)")
    parser.add_argument("--out", help="fixture folder to write")
    parser.add_argument("--fixture", help="fixture folder to compare with (with --verify)")
    parser.add_argument("--verify", help="checkpoint file or folder exported by Microsoft.ML.MemoryFormer")
    parser.add_argument("--device", default="cpu", help="cpu (pure-torch path) or cuda (official CUDA kernels)")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    if args.verify:
        sys.exit(verify(args, args.device))
    if not args.out:
        parser.error("pass --out (make the fixture) or --verify (check an export)")
    make(args)


if __name__ == "__main__":
    main()
