"""Golden values for the sequence ops (crates/core/tests/sequence.rs): PyTorch's LayerNorm,
scaled dot-product attention with an additive mask, and a 2-layer bidirectional LSTM —
forward outputs and the exact gradients of a fixed linear read-out w.r.t. the inputs.

Run: /work/venv/bin/python scripts/golden/sequence_torch.py   (torch 2.15, safetensors)
Writes crates/core/tests/data/sequence_torch.safetensors (float64 values; the Rust test runs in f32
and f64).
"""
import torch
from safetensors.torch import save_file

torch.manual_seed(0)
dt = torch.float64
out = {}

# LayerNorm over the last dim of a non-trivial shape, with affine parameters.
x = torch.randn(2, 3, 7, dtype=dt, requires_grad=True)
ln = torch.nn.LayerNorm(7, eps=1e-5, dtype=dt)
with torch.no_grad():
    ln.weight.copy_(torch.randn(7, dtype=dt))
    ln.bias.copy_(torch.randn(7, dtype=dt))
y = ln(x)
ry = torch.randn_like(y)
(g,) = torch.autograd.grad((y * ry).sum(), x)
out.update(ln_x=x, ln_weight=ln.weight, ln_bias=ln.bias, ln_y=y, ln_readout=ry, ln_grad=g)

# Attention: (B, heads, L, d), mask dropping the last key of batch 1.
q = torch.randn(2, 2, 4, 3, dtype=dt, requires_grad=True)
k = torch.randn(2, 2, 5, 3, dtype=dt, requires_grad=True)
v = torch.randn(2, 2, 5, 6, dtype=dt, requires_grad=True)
mask = torch.zeros(2, 1, 1, 5, dtype=dt)
mask[1, :, :, 4] = -1e9
a = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.4)
ra = torch.randn_like(a)
gq, gk, gv = torch.autograd.grad((a * ra).sum(), (q, k, v))
out.update(att_q=q, att_k=k, att_v=v, att_mask=mask, att_y=a, att_readout=ra, att_gq=gq, att_gk=gk, att_gv=gv)

# LSTM: 2 layers, bidirectional, batch_first, input 4, hidden 3, length 5.
lstm = torch.nn.LSTM(4, 3, num_layers=2, bidirectional=True, batch_first=True, dtype=dt)
xs = torch.randn(2, 5, 4, dtype=dt, requires_grad=True)
h, _ = lstm(xs)
rh = torch.randn_like(h)
(gx,) = torch.autograd.grad((h * rh).sum(), xs)
out.update({f"lstm.{n}": p for n, p in lstm.named_parameters()})
out.update(lstm_x=xs, lstm_h=h, lstm_readout=rh, lstm_grad=gx)

save_file({k: t.detach().contiguous() for k, t in out.items()}, "crates/core/tests/data/sequence_torch.safetensors")
print(sorted(out))
