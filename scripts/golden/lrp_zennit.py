"""Golden LRP reference values from Zennit for candle-explain's core crate.

Produces
    crates/core/tests/data/zennit_cnn.safetensors

Run from the repository root with the project's Python venv:

    /work/venv/bin/python scripts/golden/lrp_zennit.py

(needs torch, numpy, safetensors and zennit 0.5.1 from PyPI).  Everything is
float32 on CPU, single-threaded, deterministic algorithms.  The file's only
metadata key is `info` (zennit and torch versions, no date), so re-running
with the same versions gives identical bytes.

Contents
  * Full-model references (input relevance, (4,1,10,10) each), computed with
    zennit.attribution.Gradient and attr_output = one_hot(target) * output,
    i.e. the relevance at the output is the target logit at the target
    position and zero elsewhere:
        epsilon_plus           EpsilonPlus()  (eps 1e-6)
        epsilon_gamma_box      EpsilonGammaBox(low=-1.0, high=2.0)  (gamma 0.25)
        epsilon_alpha2_beta1   EpsilonAlpha2Beta1()
        epsilon_plus_flat      EpsilonPlusFlat()
    plus `output` (4,3), the logits of the hooked forward pass.
    The model and inputs are NOT repeated: they are the weights conv1.*,
    conv2.*, fc1.*, fc2.*, `input` and `target` of the committed
    crates/core/tests/data/captum_cnn.safetensors.
  * Single-rule references on one layer (the rule is the only hook):
        lin  = nn.Linear(5, 4), torch.manual_seed(1), default init, weight and
               bias * 1.5;  lin.input (3,5) randn seed 2;  lin.relevance (3,4)
               randn seed 3 (the gradient fed into the layer's output).
        conv = nn.Conv2d(3, 4, 3, padding=1, stride=2), torch.manual_seed(4),
               weight and bias * 1.5;  conv.input (2,3,7,7) randn seed 5;
               conv.relevance (2,4,4,4) randn seed 6.
    stored as <layer>.weight / .bias / .input / .relevance and <layer>.<rule>
    (input relevance) for rule in
        epsilon (Epsilon(1e-6)), epsilon_0.25 (Epsilon(0.25)), zplus,
        alpha2_beta1, alpha1_beta0, gamma (Gamma(0.25)), flat, wsquare,
        zbox (ZBox(low=-1.5, high=2.0)).
    Inputs are standard normal, so negative inputs and inputs outside the
    ZBox bounds occur on purpose.

Model (eval mode), an nn.Sequential so that Zennit can hook every module:
    conv1 Conv2d(1,4,3) -> relu1 -> conv2 Conv2d(4,6,3,padding=1) -> relu2
    -> pool MaxPool2d(2) -> flatten nn.Flatten -> fc1 Linear(96,16) -> relu3
    -> fc2 Linear(16,3)

Zennit behaviour worth knowing (0.5.1, read from its source and confirmed by
the independent float64 re-implementation this script checks against):
  * stabilize(z, eps) = z + eps * sign(z) with sign(0) = +1.  Every rule's
    default stabiliser is 1e-6 (Epsilon's epsilon is its stabiliser).
  * Presets: Conv2d -> ZPlus / Gamma / AlphaBeta(2,1), Linear -> Epsilon,
    ReLU -> Pass (relevance passed through unchanged), BatchNorm -> Pass,
    AvgPool and Sum -> Norm.  MaxPool2d and Flatten get NO hook: relevance
    goes through their plain gradient (max-pool routes all of a window's
    relevance to its argmax, first index on ties; flatten reshapes).
  * "First layer" (EpsilonGammaBox, EpsilonPlusFlat) = first module in
    named_modules() order that matches the first_map type.  EpsilonPlusFlat
    maps zennit.types.Linear, which includes Conv2d, so Flat lands on conv1.
  * ZPlus is alpha=1,beta=0 with negative inputs allowed:
    z+ = x+ . w+ + x- . w- + b+ ; R_i = (x+_i w+_ij + x-_i w-_ij) R_j / stab(z+).
  * AlphaBeta: positive part as ZPlus (with b+), negative part
    z- = x+ . w- + x- . w+ + b- ; both stabilised with the same sign rule.
  * Gamma (0.25) is the sign-aware variant: outputs with z = w.x + b > 0 use
    (w + g w+) on x+ and (w + g w-) on x-, bias b + g b+; outputs with z < 0
    use (w + g w-) on x+ and (w + g w+) on x-, bias b + g b-; outputs with
    z == 0 get no relevance.  Note "w + g w+" modifies the whole weight, not
    only its positive part.
  * Flat: inputs and weights replaced by ones, bias zeroed: z_j counts the
    in-bounds taps (padding taps count 0), R_i = sum_j R_j / stab(z_j).
  * WSquare: inputs ones, weights squared AND bias squared (Zennit does not
    zero the bias here): z_j = sum_i w_ij^2 + b_j^2.
  * ZBox: z = x.w + b - (l.w+ + b+) - (h.w- + b-); the bias cancels.  low /
    high tensors go through the same zero padding as the input.
  * conv.epsilon (eps 1e-6) is ill-conditioned with these random data:
    one output has z = 0.00307, so |R_in| reaches ~162 and float32 rounding
    of z alone moves values by ~2e-3 (1.2e-5 relative to the max).  Compare
    it with a tolerance relative to max |R|, not an absolute one.
  * Relevance is not conserved through biases; the script prints the CNN's
    relevance sum against the target logit.
"""

import os
import sys
from collections import OrderedDict
from importlib.metadata import version

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from zennit.attribution import Gradient
from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat
from zennit.core import Composite
from zennit.rules import AlphaBeta, Epsilon, Flat, Gamma, WSquare, ZBox, ZPlus

DATA_DIR = os.path.join("crates", "core", "tests", "data")
IN_PATH = os.path.join(DATA_DIR, "captum_cnn.safetensors")
OUT_PATH = os.path.join(DATA_DIR, "zennit_cnn.safetensors")

ZENNIT_VERSION = "0.5.1"
STAB = 1e-6  # Zennit's default stabiliser
CNN_LOW, CNN_HIGH = -1.0, 2.0
LAYER_LOW, LAYER_HIGH = -1.5, 2.0


def layer_rules():
    """Single-layer rules by name: (zennit hook factory, float64 reference)."""
    return OrderedDict(
        [
            ("epsilon", (lambda: Epsilon(epsilon=1e-6), ("epsilon", 1e-6))),
            ("epsilon_0.25", (lambda: Epsilon(epsilon=0.25), ("epsilon", 0.25))),
            ("zplus", (lambda: ZPlus(), ("alphabeta", 1.0, 0.0))),
            ("alpha2_beta1", (lambda: AlphaBeta(alpha=2.0, beta=1.0), ("alphabeta", 2.0, 1.0))),
            ("alpha1_beta0", (lambda: AlphaBeta(alpha=1.0, beta=0.0), ("alphabeta", 1.0, 0.0))),
            ("gamma", (lambda: Gamma(gamma=0.25), ("gamma", 0.25))),
            ("flat", (lambda: Flat(), ("flat",))),
            ("wsquare", (lambda: WSquare(), ("wsquare",))),
            ("zbox", (lambda: ZBox(low=LAYER_LOW, high=LAYER_HIGH), ("zbox", LAYER_LOW, LAYER_HIGH))),
        ]
    )


# ---------------------------------------------------------------------------
# Zennit side
# ---------------------------------------------------------------------------


def zennit_single_rule(module, rule, x, relevance):
    """Input relevance of `module` with `rule` as its only hook (Composite with
    a module_map that returns the rule for that one module)."""
    composite = Composite(module_map=lambda ctx, name, mod: rule if mod is module else None)
    with Gradient(model=module, composite=composite) as attributor:
        _, attr = attributor(x.clone(), attr_output=relevance)
    return attr.detach()


def zennit_cnn(model, composite, x, target):
    def attr_output(out):
        return F.one_hot(target, out.shape[1]).to(out) * out

    with Gradient(model=model, composite=composite, attr_output=attr_output) as attributor:
        out, attr = attributor(x.clone())
    return out.detach(), attr.detach()


# ---------------------------------------------------------------------------
# Independent float64 reference (dense formulas on "patches")
#
# A layer is seen as y[m, o] = cols[m, :] . W[o, :] + b[o], where for a Linear
# m is the example and cols the input, and for a Conv2d m runs over
# (example, output position) and cols = unfold(input); per-patch relevances
# are folded back (overlaps summed).
# ---------------------------------------------------------------------------


def stab(z, eps):
    return z + eps * torch.where(z >= 0, 1.0, -1.0).to(z)


def ref_rule(spec, cols, w, b, r, const_cols):
    """Per-patch input relevance (M, I).  const_cols(v) gives the columns of
    an input tensor filled with v (zero in padding)."""
    kind = spec[0]
    wp, wn = w.clamp(min=0), w.clamp(max=0)
    bp, bn = b.clamp(min=0), b.clamp(max=0)
    xp, xn = cols.clamp(min=0), cols.clamp(max=0)
    if kind == "epsilon":
        s = r / stab(cols @ w.T + b, spec[1])
        return cols * (s @ w)
    if kind == "alphabeta":
        alpha, beta = spec[1], spec[2]
        zpos = xp @ wp.T + xn @ wn.T + bp
        zneg = xp @ wn.T + xn @ wp.T + bn
        spos, sneg = r / stab(zpos, STAB), r / stab(zneg, STAB)
        return alpha * (xp * (spos @ wp) + xn * (spos @ wn)) - beta * (xp * (sneg @ wn) + xn * (sneg @ wp))
    if kind == "gamma":
        g = spec[1]
        w_up, w_dn = w + g * wp, w + g * wn
        z = cols @ w.T + b
        den_p = xp @ w_up.T + xn @ w_dn.T + (b + g * bp)
        den_n = xp @ w_dn.T + xn @ w_up.T + (b + g * bn)
        sp = r * (z > 0).to(r) / stab(den_p, STAB)
        sn = r * (z < 0).to(r) / stab(den_n, STAB)
        return xp * (sp @ w_up) + xn * (sp @ w_dn) + xp * (sn @ w_dn) + xn * (sn @ w_up)
    if kind == "flat":
        ones_c, ones_w = const_cols(1.0), torch.ones_like(w)
        s = r / stab(ones_c @ ones_w.T, STAB)
        return ones_c * (s @ ones_w)
    if kind == "wsquare":
        ones_c = const_cols(1.0)
        s = r / stab(ones_c @ (w * w).T + b * b, STAB)
        return ones_c * (s @ (w * w))
    if kind == "zbox":
        lo, hi = const_cols(spec[1]), const_cols(spec[2])
        z = cols @ w.T - lo @ wp.T - hi @ wn.T
        s = r / stab(z, STAB)
        return cols * (s @ w) - lo * (s @ wp) - hi * (s @ wn)
    raise ValueError(kind)


def ref_linear(spec, lin, x, r):
    w, b = lin.weight.detach().double(), lin.bias.detach().double()
    x = x.double()
    return ref_rule(spec, x, w, b, r.double(), lambda v: torch.full_like(x, v))


def ref_conv(spec, conv, x, r):
    x, r = x.double(), r.double()
    n, _, h, wd = x.shape
    k, pad, st = conv.kernel_size, conv.padding, conv.stride
    w = conv.weight.detach().double().flatten(1)
    b = conv.bias.detach().double()

    def cols_of(t):  # (N, I, L) -> (N*L, I)
        c = F.unfold(t, k, padding=pad, stride=st)
        return c.transpose(1, 2).reshape(-1, c.shape[1])

    cols = cols_of(x)
    rm = r.flatten(2).transpose(1, 2).reshape(-1, r.shape[1])
    pr = ref_rule(spec, cols, w, b, rm, lambda v: cols_of(torch.full_like(x, v)))
    L = pr.shape[0] // n
    pr = pr.reshape(n, L, -1).transpose(1, 2)
    return F.fold(pr, (h, wd), k, padding=pad, stride=st)


def ref_cnn(model, x, target, conv_specs, lin_spec):
    """Chain the float64 layer rules through the CNN: ReLU passes relevance,
    MaxPool2d and Flatten use their plain gradient."""
    m = model.double()
    try:
        x = x.double()
        with torch.no_grad():
            a0 = x
            z1 = m.conv1(a0)
            a1 = m.relu1(z1)
            a2 = m.relu2(m.conv2(a1))
        a2g = a2.clone().requires_grad_()
        p = m.pool(a2g)
        f = m.flatten(p)
        with torch.no_grad():
            h = m.relu3(m.fc1(f))
            out = m.fc2(h)
        r = F.one_hot(target, out.shape[1]).double() * out
        r = ref_linear(lin_spec, m.fc2, h, r)
        r = ref_linear(lin_spec, m.fc1, f.detach(), r)
        (r,) = torch.autograd.grad(f, a2g, grad_outputs=r)  # flatten + max-pool
        r = ref_conv(conv_specs[1], m.conv2, a1, r)
        r = ref_conv(conv_specs[0], m.conv1, a0, r)
        return r
    finally:
        model.float()


# ---------------------------------------------------------------------------


def build_cnn(weights):
    model = nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(1, 4, 3)),
                ("relu1", nn.ReLU()),
                ("conv2", nn.Conv2d(4, 6, 3, padding=1)),
                ("relu2", nn.ReLU()),
                ("pool", nn.MaxPool2d(2)),
                ("flatten", nn.Flatten()),
                ("fc1", nn.Linear(96, 16)),
                ("relu3", nn.ReLU()),
                ("fc2", nn.Linear(16, 3)),
            ]
        )
    )
    state = {k: weights[k] for k in model.state_dict().keys()}
    model.load_state_dict(state)
    return model.eval()


def seeded_layer(seed, make):
    torch.manual_seed(seed)
    layer = make()
    with torch.no_grad():
        layer.weight.mul_(1.5)
        layer.bias.mul_(1.5)
    return layer.eval()


def randn(seed, *shape):
    torch.manual_seed(seed)
    return torch.randn(*shape)


def close(a, b, tol):
    """max |a - b| <= tol * max |b|  (relative to the tensor's scale)"""
    a, b = a.double(), b.double()
    err = (a - b).abs().max().item()
    return err <= tol * b.abs().max().item(), err


def main():
    zv = version("zennit")
    if zv != ZENNIT_VERSION:
        print(f"warning: zennit {zv}, script written against {ZENNIT_VERSION}", file=sys.stderr)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)

    out = OrderedDict()

    # ---------------- single-rule layers ----------------
    lin = seeded_layer(1, lambda: nn.Linear(5, 4))
    lin_x = randn(2, 3, 5)
    lin_r = randn(3, 3, 4)
    conv = seeded_layer(4, lambda: nn.Conv2d(3, 4, 3, padding=1, stride=2))
    conv_x = randn(5, 2, 3, 7, 7)
    with torch.no_grad():
        conv_shape = conv(conv_x).shape
    conv_r = randn(6, *conv_shape)

    for name, layer, x, r, ref in [
        ("lin", lin, lin_x, lin_r, ref_linear),
        ("conv", conv, conv_x, conv_r, ref_conv),
    ]:
        out[f"{name}.weight"] = layer.weight.detach().clone()
        out[f"{name}.bias"] = layer.bias.detach().clone()
        out[f"{name}.input"] = x
        out[f"{name}.relevance"] = r
        for rule_name, (make_rule, spec) in layer_rules().items():
            attr = zennit_single_rule(layer, make_rule(), x, r)
            assert attr.shape == x.shape, (name, rule_name, attr.shape)
            ok, err = close(attr, ref(spec, layer, x, r), 1e-4)
            assert ok, f"{name}.{rule_name}: zennit vs float64 reference, max err {err:.3e}"
            print(f"{name}.{rule_name:13s} sum(R_in) = {attr.sum().item(): .6f}   "
                  f"sum(R_out) = {r.sum().item(): .6f}   |zennit - ref64| = {err:.1e}")
            out[f"{name}.{rule_name}"] = attr

    # zplus (alpha1_beta0) must agree with itself
    assert torch.allclose(out["lin.zplus"], out["lin.alpha1_beta0"], atol=1e-6)
    assert torch.allclose(out["conv.zplus"], out["conv.alpha1_beta0"], atol=1e-6)

    # conservation: bias-free linear layer, positive inputs
    lin0 = seeded_layer(1, lambda: nn.Linear(5, 4))
    with torch.no_grad():
        lin0.bias.zero_()
    x_pos = lin_x.abs() + 0.1
    print("conservation, bias-free lin, positive inputs (per example):")
    for rule_name in ["zplus", "epsilon"]:
        make_rule, _ = layer_rules()[rule_name]
        attr = zennit_single_rule(lin0, make_rule(), x_pos, lin_r)
        s_in, s_out = attr.sum(1), lin_r.sum(1)
        print(f"  {rule_name:8s} sum(R_in) = {s_in.tolist()}\n           sum(R_out) = {s_out.tolist()}")
        assert torch.allclose(s_in, s_out, atol=1e-4), rule_name

    # ---------------- CNN ----------------
    with safe_open(IN_PATH, "pt") as f:
        weights = {k: f.get_tensor(k) for k in f.keys()}
    model = build_cnn(weights)
    x, target = weights["input"], weights["target"]
    with torch.no_grad():
        logits = model(x)
    assert torch.allclose(logits, weights["logits"], atol=1e-5), "CNN does not reproduce captum logits"
    tlogit = logits.gather(1, target[:, None])[:, 0]

    composites = OrderedDict(
        [
            ("epsilon_plus", (lambda: EpsilonPlus(), [("alphabeta", 1.0, 0.0)] * 2)),
            (
                "epsilon_gamma_box",
                (
                    lambda: EpsilonGammaBox(low=CNN_LOW, high=CNN_HIGH),
                    [("zbox", CNN_LOW, CNN_HIGH), ("gamma", 0.25)],
                ),
            ),
            ("epsilon_alpha2_beta1", (lambda: EpsilonAlpha2Beta1(), [("alphabeta", 2.0, 1.0)] * 2)),
            ("epsilon_plus_flat", (lambda: EpsilonPlusFlat(), [("flat",), ("alphabeta", 1.0, 0.0)])),
        ]
    )
    print("CNN: sum of input relevance vs target logit (per example):")
    print(f"  target logit          {[round(v, 6) for v in tlogit.tolist()]}")
    for name, (make, conv_specs) in composites.items():
        o, attr = zennit_cnn(model, make(), x, target)
        assert torch.equal(o, logits), name
        # hooks must be gone again
        with torch.no_grad():
            assert torch.equal(model(x), logits)
        ok, err = close(attr, ref_cnn(model, x, target, conv_specs, ("epsilon", 1e-6)), 1e-4)
        assert ok, f"{name}: zennit vs float64 chain, max err {err:.3e}"
        sums = attr.sum(dim=(1, 2, 3))
        print(f"  {name:21s} {[round(v, 6) for v in sums.tolist()]}   |zennit - ref64| = {err:.1e}")
        out[name] = attr
    out["output"] = logits

    # determinism: a second run gives identical bits
    _, again = zennit_cnn(model, EpsilonPlus(), x, target)
    assert torch.equal(again, out["epsilon_plus"])

    out = {k: v.contiguous() for k, v in out.items()}
    info = f"zennit {zv}; torch {torch.__version__}; generated by scripts/golden/lrp_zennit.py"
    save_file(out, OUT_PATH, metadata={"info": info})
    print(f"wrote {OUT_PATH}: {len(out)} tensors ({info})")
    for k, v in out.items():
        print(f"  {k:24s} {tuple(v.shape)} {v.dtype}")


if __name__ == "__main__":
    main()
