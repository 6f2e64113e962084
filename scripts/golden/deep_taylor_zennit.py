"""Golden Deep Taylor decomposition reference from Zennit for candle-explain's
core crate.

Produces
    crates/core/tests/data/zennit_deep_taylor.safetensors

Run from the repository root with the project's Python venv:

    /work/venv/bin/python scripts/golden/deep_taylor_zennit.py

(needs torch, numpy, safetensors and zennit 0.5.1 from PyPI; reuses the model
builder, the Zennit driver and the float64 layer-rule reference of
scripts/golden/lrp_zennit.py, which must sit next to this file).  Everything
is float32 on CPU, single-threaded, deterministic algorithms.  The file's only
metadata key is `info` (zennit and torch versions, no date), so re-running
with the same versions gives identical bytes.

Contents
  * deep_taylor (4,1,10,10): input relevance of Deep Taylor decomposition
    (Montavon et al. 2017, "Explaining nonlinear classification decisions
    with deep Taylor decomposition") written as a Zennit composite, computed
    like the full-model references of lrp_zennit.py:
    zennit.attribution.Gradient with attr_output = one_hot(target) * output,
    i.e. the relevance at the output is the target logit at the target
    position and zero elsewhere.  The composite is exactly

        SpecialFirstLayerMapComposite(
            layer_map=[
                (zennit.types.Activation,  Pass()),
                (zennit.types.Convolution, ZPlus()),
                (torch.nn.Linear,          ZPlus()),
                (zennit.types.AvgPool,     Norm()),
            ],
            first_map=[(zennit.types.Convolution, ZBox(low=-1.0, high=2.0))],
        )

    (rules from zennit.rules, all with Zennit's default stabiliser 1e-6; no
    canonizers).  On this model that means
        conv1  ZBox(-1, 2)   (first module matching first_map; the inputs lie
                              in [0.001, 0.996], inside the box)
        relu1, relu2, relu3  Pass (relevance passed through unchanged)
        conv2  ZPlus
        pool   MaxPool2d(2): NO hook (no entry matches it; the AvgPool/Norm
               entry never fires here) -> plain gradient, i.e. all of a 2x2
               window's relevance goes to its argmax, first index on ties
        flatten  nn.Flatten: no hook, plain gradient (a reshape)
        fc1, fc2  ZPlus
    Differences to the lrp_zennit.py composites: EpsilonPlus uses Epsilon on
    the Linear layers and ZPlus also on conv1; EpsilonGammaBox uses the same
    ZBox(-1, 2) on conv1 but Gamma(0.25) on conv2 and Epsilon on Linear.
  * output (4,3): the logits of the hooked forward pass (equal to the plain
    model's logits; asserted).
    The model and inputs are NOT repeated: they are the weights conv1.*,
    conv2.*, fc1.*, fc2.*, `input` and `target` of the committed
    crates/core/tests/data/captum_cnn.safetensors.

Model (eval mode), an nn.Sequential so that Zennit can hook every module
(lrp_zennit.build_cnn):
    conv1 Conv2d(1,4,3) -> relu1 -> conv2 Conv2d(4,6,3,padding=1) -> relu2
    -> pool MaxPool2d(2) -> flatten nn.Flatten -> fc1 Linear(96,16) -> relu3
    -> fc2 Linear(16,3)

Zennit behaviour worth knowing (0.5.1; see also lrp_zennit.py's notes, and
confirmed by the independent float64 chain this script checks against):
  * ZPlus is alpha=1,beta=0 with negative inputs allowed:
    z+ = x+ . w+ + x- . w- + b+ ; R_i = (x+_i w+_ij + x-_i w-_ij) R_j / stab(z+).
    Here every ZPlus layer sits after a ReLU, so x- = 0 and this is the
    original DTD z+ rule, except that the positive part of the bias, b+, is
    in the denominator (Montavon et al. use bias-free / non-positive-bias
    layers).  The share b+_j / z+_j of R_j is absorbed by the bias, so DTD
    here is NOT exactly conservative: sum(R_in) < target logit in magnitude.
    The script prints sum(R_in) per example against the target logit.
  * ZBox: z = x.w + b - (l.w+ + b+) - (h.w- + b-); the bias cancels, so the
    first layer itself is conservative (up to the stabiliser).
  * Check of the above: the same composite on a copy of the model with all
    biases zeroed conserves relevance: sum(R_in) equals that model's target
    logit up to ~2e-6 absolute (asserted to 1e-4 relative).  That residue is
    the stabiliser alone: with stabilizer=1e-12 in float64 it drops to ~2e-12.
  * Sign: z+ (inputs >= 0 after the ReLUs) and ZBox (inputs inside the box)
    only ever multiply the upper relevance by non-negative factors, so every
    pixel's relevance has the sign of the target logit (or is 0): example 2
    (negative target logit) is <= 0 everywhere, the others >= 0 (asserted).
    Unlike EpsilonPlus, whose Epsilon rule on the Linear layers lets the sum
    change sign.
"""

import copy
import os
import sys
from collections import OrderedDict
from importlib.metadata import version

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from zennit.composites import SpecialFirstLayerMapComposite
from zennit.rules import Norm, Pass, ZBox, ZPlus
from zennit.types import Activation, AvgPool, Convolution

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lrp_zennit import (  # noqa: E402
    CNN_HIGH,
    CNN_LOW,
    IN_PATH,
    ZENNIT_VERSION,
    build_cnn,
    close,
    ref_cnn,
    zennit_cnn,
)

DATA_DIR = os.path.join("crates", "core", "tests", "data")
OUT_PATH = os.path.join(DATA_DIR, "zennit_deep_taylor.safetensors")


def deep_taylor_composite():
    """Deep Taylor decomposition as a Zennit composite (see module docstring)."""
    return SpecialFirstLayerMapComposite(
        layer_map=[
            (Activation, Pass()),
            (Convolution, ZPlus()),
            (torch.nn.Linear, ZPlus()),
            (AvgPool, Norm()),
        ],
        first_map=[(Convolution, ZBox(low=CNN_LOW, high=CNN_HIGH))],
    )


# float64 chain of lrp_zennit.ref_cnn: conv1, conv2 specs and the Linear spec
REF_CONV_SPECS = [("zbox", CNN_LOW, CNN_HIGH), ("alphabeta", 1.0, 0.0)]
REF_LIN_SPEC = ("alphabeta", 1.0, 0.0)


def main():
    zv = version("zennit")
    if zv != ZENNIT_VERSION:
        print(f"warning: zennit {zv}, script written against {ZENNIT_VERSION}", file=sys.stderr)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)

    with safe_open(IN_PATH, "pt") as f:
        weights = {k: f.get_tensor(k) for k in f.keys()}
    model = build_cnn(weights)
    x, target = weights["input"], weights["target"]
    assert x.min().item() >= CNN_LOW and x.max().item() <= CNN_HIGH, "input outside the ZBox bounds"
    with torch.no_grad():
        logits = model(x)
    assert torch.allclose(logits, weights["logits"], atol=1e-5), "CNN does not reproduce captum logits"
    tlogit = logits.gather(1, target[:, None])[:, 0]

    # which hook lands on which module
    composite = deep_taylor_composite()
    hooked = OrderedDict()
    ctx = {}
    for name, m in model.named_children():
        hook = composite.mapping(ctx, name, m)
        hooked[name] = type(hook).__name__ if hook is not None else "(none: gradient)"
    print("hooks:", ", ".join(f"{k}={v}" for k, v in hooked.items()))
    assert hooked == {
        "conv1": "ZBox", "relu1": "Pass", "conv2": "ZPlus", "relu2": "Pass",
        "pool": "(none: gradient)", "flatten": "(none: gradient)",
        "fc1": "ZPlus", "relu3": "Pass", "fc2": "ZPlus",
    }, hooked

    o, attr = zennit_cnn(model, deep_taylor_composite(), x, target)
    assert torch.equal(o, logits), "hooked forward changed the logits"
    with torch.no_grad():  # hooks must be gone again
        assert torch.equal(model(x), logits)
    assert attr.shape == x.shape, attr.shape
    assert torch.isfinite(attr).all(), "non-finite relevance"
    assert attr.abs().max().item() > 0, "all-zero relevance"

    signed = attr * torch.sign(tlogit)[:, None, None, None]
    assert signed.min().item() >= -1e-9 * attr.abs().max().item(), "relevance against the logit's sign"

    ok, err = close(attr, ref_cnn(model, x, target, REF_CONV_SPECS, REF_LIN_SPEC), 1e-4)
    assert ok, f"deep_taylor: zennit vs float64 chain, max err {err:.3e}"

    # determinism: a second run gives identical bits
    _, again = zennit_cnn(model, deep_taylor_composite(), x, target)
    assert torch.equal(again, attr)

    sums = attr.sum(dim=(1, 2, 3))
    print("deep_taylor: sum of input relevance vs target logit (per example):")
    print(f"  target          {target.tolist()}")
    print(f"  target logit    {[round(v, 6) for v in tlogit.tolist()]}")
    print(f"  sum(R_in)       {[round(v, 6) for v in sums.tolist()]}")
    print(f"  ratio           {[round(v, 4) for v in (sums / tlogit).tolist()]}")
    print(f"  |zennit - ref64| = {err:.1e}   max |R| = {attr.abs().max().item():.4e}")

    # conservation without biases: the missing relevance is the biases' share
    model0 = copy.deepcopy(model)
    with torch.no_grad():
        for m in model0.modules():
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
        logits0 = model0(x)
    tlogit0 = logits0.gather(1, target[:, None])[:, 0]
    _, attr0 = zennit_cnn(model0, deep_taylor_composite(), x, target)
    sums0 = attr0.sum(dim=(1, 2, 3))
    print("bias-free copy (check only, not stored):")
    print(f"  target logit    {[round(v, 6) for v in tlogit0.tolist()]}")
    print(f"  sum(R_in)       {[round(v, 6) for v in sums0.tolist()]}")
    assert torch.allclose(sums0, tlogit0, rtol=1e-4, atol=0.0), "bias-free DTD not conservative"

    out = OrderedDict([("deep_taylor", attr), ("output", logits)])
    out = {k: v.contiguous() for k, v in out.items()}
    info = f"zennit {zv}; torch {torch.__version__}; generated by scripts/golden/deep_taylor_zennit.py"
    save_file(out, OUT_PATH, metadata={"info": info})
    print(f"wrote {OUT_PATH}: {len(out)} tensors ({info})")
    for k, v in out.items():
        print(f"  {k:12s} {tuple(v.shape)} {v.dtype}")


if __name__ == "__main__":
    main()
