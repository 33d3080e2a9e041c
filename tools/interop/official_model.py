"""The official MemoryFormer language model (C0-Design/MemoryFormer, a GPT-NeoX fork) in plain PyTorch, for interop checks.

MemoryLayer is imported verbatim from the official repository (memory_module/memory.py). The GPT-NeoX code around it
(megatron/model/transformer.py: MySelfAttention's memory Q/K/V path with del_dense, ParallelTransformerLayer with
double_mlp_table + mlp_expand_type "extra_bit"; megatron/model/norms.py: RMSNorm; megatron/model/positional_embeddings.py:
RotaryEmbedding, rotate_half, apply_rotary_pos_emb; megatron/model/gpt2_model.py: GPT2ModelPipe's stage list) needs
DeepSpeed, Megatron's mpu and fused kernels to import, so it is re-implemented here line for line with the same module
names, parameter names, shapes and math, for model-parallel-size 1, fp32, no dropout and the non-flash attention path.
Its state dict has exactly the keys GPT-NeoX saves: sequential.{stage}.{name}.
"""
import math
import os
import sys
import types
from copy import deepcopy

import torch
import torch.nn as nn


def import_memory_layer(official_repo, stub_extensions):
    """Imports memory_module.MemoryLayer from the official checkout.

    stub_extensions=True replaces torch.utils.cpp_extension.load by a stub, so the C++/CUDA kernels are neither built
    nor used; only the pure-torch path (force_torch_op=True: compute_code_score_torch + gather_compute_flops) runs.
    """
    if stub_extensions:
        import torch.utils.cpp_extension as cpp_extension

        def stub_load(name, *args, **kwargs):
            module = types.ModuleType(name)

            def refuse(*a, **k):
                raise RuntimeError(f"extension {name} is stubbed out; use force_torch_op=True")

            module.__getattr__ = lambda attr: refuse
            sys.modules[name] = module
            return module

        cpp_extension.load = stub_load
    sys.path.insert(0, os.path.abspath(official_repo))
    from memory_module.memory import MemoryLayer  # noqa: E402  (official code, unmodified)
    return MemoryLayer


class RMSNorm(nn.Module):
    """megatron/model/norms.py RMSNorm (p = -1, no bias)."""

    def __init__(self, dim, eps=1e-8):
        super().__init__()
        self.eps = eps
        self.d = dim
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        norm_x = x.norm(2, dim=-1, keepdim=True)
        rms_x = norm_x * self.d ** (-1.0 / 2)
        x_normed = x / (rms_x + self.eps)
        return self.scale * x_normed


class RotaryEmbedding(nn.Module):
    """megatron/model/positional_embeddings.py RotaryEmbedding (fp32, inv_freq not persistent)."""

    def __init__(self, dim, max_seq_len, base=10000):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        t = torch.arange(max_seq_len).type_as(inv_freq)
        freqs = torch.einsum("i,j->ij", t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos_cached = emb.cos()[:, None, None, :]
        self.sin_cached = emb.sin()[:, None, None, :]

    def forward(self, x, seq_len):
        return self.cos_cached[:seq_len, ...].to(x.device), self.sin_cached[:seq_len, ...].to(x.device)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=x1.ndim - 1)


def apply_rotary_pos_emb(q, k, cos, sin, offset: int = 0):
    cos, sin = cos[offset: q.shape[0] + offset, ...], sin[offset: q.shape[0] + offset, ...]
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


class SelfAttention(nn.Module):
    """MySelfAttention: memory Q/K/V sharing the value layer's hash, rotary on rotary-pct of each head, del_dense."""

    def __init__(self, cfg, MemoryLayer, force_torch_op):
        super().__init__()
        h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
        self.heads = heads
        self.head_dim = h // heads
        attn = {"hidden_size": h, "output_size": h, "ffn_num_table": h // cfg["code_length"], "code_length": cfg["code_length"],
                "projection_type": "dense", "block_size": 64, "remove_projection": True, "act_fn": "silu"}
        self.query_proj = MemoryLayer(deepcopy(attn), force_torch_op=force_torch_op)
        self.key_proj = MemoryLayer(deepcopy(attn), force_torch_op=force_torch_op)
        self.value_proj = MemoryLayer(deepcopy(attn), force_torch_op=force_torch_op)
        self.rotary_ndims = int(self.head_dim * cfg["rotary_pct"])
        self.rotary_emb = RotaryEmbedding(self.rotary_ndims, cfg["seq_length"], base=cfg["rotary_emb_base"])
        self.norm_factor = math.sqrt(self.head_dim)

    def _forward_memory_qkv(self, hidden_states):
        other_shape = hidden_states.shape[:-1]
        hidden_states = hidden_states.reshape(int(torch.tensor(other_shape).prod()), -1)
        code_score = self.value_proj.hash(hidden_states, table_weight=None, force_torch_op=self.value_proj.force_torch_op)
        code_score_shape = code_score + (other_shape,)
        q = self.query_proj(None, precompute_code_score_shape=code_score_shape)
        k = self.key_proj(None, precompute_code_score_shape=code_score_shape)
        v = self.value_proj(None, precompute_code_score_shape=code_score_shape)
        return q, k, v

    def forward(self, x):                                       # x [s, b, h]
        s, b, h = x.shape
        q, k, v = self._forward_memory_qkv(x)
        shape = (s, b, self.heads, self.head_dim)
        q, k, v = q.view(*shape), k.view(*shape), v.view(*shape)
        r = self.rotary_ndims
        q_rot, q_pass = q[..., :r], q[..., r:]
        k_rot, k_pass = k[..., :r], k[..., r:]
        cos, sin = self.rotary_emb(v, seq_len=s)
        q, k = apply_rotary_pos_emb(q_rot, k_rot, cos, sin, offset=0)
        q, k = torch.cat((q, q_pass), dim=-1), torch.cat((k, k_pass), dim=-1)
        # attention(): baddbmm scores / norm_factor, causal mask filled with -10000 (gpt2_attention_mask_func), softmax in fp32
        qh = q.reshape(s, b * self.heads, -1).transpose(0, 1)   # [b*np, s, hn]
        kh = k.reshape(s, b * self.heads, -1).transpose(0, 1)
        vh = v.reshape(s, b * self.heads, -1).transpose(0, 1)
        scores = torch.bmm(qh, kh.transpose(1, 2)) / self.norm_factor
        mask = torch.triu(torch.ones(s, s, dtype=torch.bool, device=x.device), diagonal=1)
        scores = scores.masked_fill(mask, -10000.0)
        probs = torch.softmax(scores.float(), dim=-1).to(scores.dtype)
        context = torch.bmm(probs, vh)                          # [b*np, s, hn]
        context = context.view(b, self.heads, s, -1).permute(2, 0, 1, 3).contiguous()
        return context.view(s, b, h)                            # del_dense: no output projection


class TransformerLayer(nn.Module):
    """ParallelTransformerLayer with mlp_type MemoryBlock, double_mlp_table, mlp_expand_type extra_bit."""

    def __init__(self, cfg, MemoryLayer, force_torch_op):
        super().__init__()
        h, tau = cfg["hidden_size"], cfg["code_length"]
        self.input_layernorm = RMSNorm(h, eps=cfg["rms_norm_epsilon"])
        self.attention = SelfAttention(cfg, MemoryLayer, force_torch_op)
        self.post_attention_layernorm = RMSNorm(h, eps=cfg["rms_norm_epsilon"])
        memory = {"remove_projection": True, "hidden_size": h, "output_size": h, "ffn_num_table": h // tau, "code_length": tau,
                  "projection_type": "dense", "block_size": 64, "learn_weight": False, "act_fn": "silu", "act_pos": "none"}
        extra_bit = 2
        cfg1 = deepcopy(memory)
        cfg1["output_size"] = int(memory["ffn_num_table"] * (memory["code_length"] + extra_bit))
        cfg2 = deepcopy(memory)
        cfg2["code_length"] = memory["code_length"] + extra_bit
        self.mlp = nn.Sequential(MemoryLayer(cfg1, force_torch_op=force_torch_op), nn.LayerNorm(cfg1["output_size"]),
                                 MemoryLayer(cfg2, force_torch_op=force_torch_op))

    def forward(self, x):
        residual = x
        attention_output = self.attention(self.input_layernorm(x))
        attention_output = attention_output + residual
        mlp_output = self.mlp(self.post_attention_layernorm(attention_output))
        return mlp_output + attention_output


class EmbeddingPipe(nn.Module):
    def __init__(self, vocab, h):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, h)

    def forward(self, tokens):
        return self.word_embeddings(tokens)


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class NormPipe(nn.Module):
    def __init__(self, h, eps):
        super().__init__()
        self.norm = RMSNorm(h, eps=eps)

    def forward(self, x):
        return self.norm(x)


class ParallelLinearPipe(nn.Module):
    def __init__(self, h, vocab):
        super().__init__()
        self.final_linear = nn.Linear(h, vocab, bias=False)

    def forward(self, x):
        return self.final_linear(x)


class GPT2Model(nn.Module):
    """GPT2ModelPipe.to_sequential(): stage 0 embedding, 1 transpose, 2..L+1 layers, L+2 transpose, L+3 norm, L+4 head."""

    def __init__(self, cfg, MemoryLayer, force_torch_op=True):
        super().__init__()
        h, vocab = cfg["hidden_size"], cfg["padded_vocab_size"]
        stages = [EmbeddingPipe(vocab, h), Lambda(lambda x: x.transpose(0, 1).contiguous())]
        stages += [TransformerLayer(cfg, MemoryLayer, force_torch_op) for _ in range(cfg["num_layers"])]
        stages += [Lambda(lambda x: x.transpose(0, 1).contiguous()), NormPipe(h, cfg["rms_norm_epsilon"]), ParallelLinearPipe(h, vocab)]
        self.sequential = nn.Sequential(*stages)

    def forward(self, tokens):                                  # [b, s] -> logits [b, s, V]
        return self.sequential(tokens)


def load_exported(path):
    """State dict (sequential.* keys) from a checkpoint in either GPT-NeoX layout, read with plain torch.load."""
    if os.path.isdir(path):
        latest = os.path.join(path, "latest")
        if os.path.exists(latest) and not os.path.exists(os.path.join(path, "mp_rank_00_model_states.pt")):
            path = os.path.join(path, open(latest).read().strip())
        single = os.path.join(path, "mp_rank_00_model_states.pt")
    else:
        single, path = path, os.path.dirname(path)
    # weights_only=True: torch's restricted unpickler must accept what Microsoft.ML.MemoryFormer writes (torch >= 1.13).
    state = torch.load(single, map_location="cpu", weights_only=True)
    if state.get("module") is not None:
        return state["module"]
    merged = {}
    for name in sorted(os.listdir(path)):
        if name.startswith("layer_") and name.endswith("-model_00-model_states.pt"):
            stage = int(name[len("layer_"):].split("-")[0])
            for key, value in torch.load(os.path.join(path, name), map_location="cpu", weights_only=True).items():
                merged[f"sequential.{stage}.{key}"] = value
    return merged
