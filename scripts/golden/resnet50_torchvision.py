"""Golden logits of torchvision's ResNet-50 with formula weights, for
crates/models/tests/resnet.rs.

Every parameter and buffer is filled from a formula both sides evaluate (no weights to
commit): tensor k of the sorted state_dict names (num_batches_tracked dropped) holds
    v[i] = a_k * sin(0.37 * i + 0.1 * k)          for weights and biases,
    running_mean[i] = 0.1 * sin(0.37 * i + 0.1 * k),
    running_var[i]  = 1 + 0.5 * sin(0.37 * i + 0.1 * k) ** 2,
with a_k = 1 / sqrt(fan_in) for conv / fc weights (fan_in = numel / out), 0.2 for
BatchNorm biases and 1 + 0.2 sin(...) for BatchNorm weights. The input (2, 3, 64, 64) is
x[n, c, h, w] = sin(0.05 * (h + 1) * (c + 1) + 0.07 * w + n).

Writes crates/models/tests/data/resnet50_torchvision.safetensors: logits (2, 1000) f32.
Usage: /work/venv/bin/python scripts/golden/resnet50_torchvision.py (from the repo root).
torchvision 0.29.2, torch 2.15.
"""

import math

import torch
import torchvision
from safetensors.torch import save_file


def fill(name, t, k):
    i = torch.arange(t.numel(), dtype=torch.float64)
    s = torch.sin(0.37 * i + 0.1 * k)
    if name.endswith("running_mean"):
        v = 0.1 * s
    elif name.endswith("running_var"):
        v = 1 + 0.5 * s**2
    elif t.dim() >= 2:
        v = s / math.sqrt(t.numel() / t.shape[0])
    elif ".bn" in name or name.startswith("bn") or "downsample.1" in name:
        v = 1 + 0.2 * s if name.endswith("weight") else 0.2 * s
    else:  # fc.bias
        v = 0.2 * s
    return v.reshape(t.shape).to(torch.float32)


def main():
    m = torchvision.models.resnet50(weights=None).eval()
    sd = {k: v for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    new = {name: fill(name, sd[name], k) for k, name in enumerate(sorted(sd))}
    m.load_state_dict(new, strict=False)
    n, c, h, w = torch.meshgrid(torch.arange(2), torch.arange(3), torch.arange(64), torch.arange(64), indexing="ij")
    x = torch.sin(0.05 * (h + 1) * (c + 1) + 0.07 * w + n).to(torch.float32)
    with torch.no_grad():
        logits = m(x)
    save_file({"logits": logits.contiguous()}, "crates/models/tests/data/resnet50_torchvision.safetensors")
    print(logits[:, :5], sum(p.numel() for p in m.parameters()))


if __name__ == "__main__":
    main()
