"""Golden LRP reference values from Zennit for a small residual CNN with
BatchNorm (candle-explain's core crate).

Produces
    crates/core/tests/data/zennit_resnet.safetensors

Run from the repository root with the project's Python venv:

    /work/venv/bin/python scripts/golden/lrp_zennit_resnet.py

(needs torch, numpy, safetensors and zennit 0.5.1 from PyPI; reuses the
float64 layer-rule reference of scripts/golden/lrp_zennit.py, which must sit
next to this file).  Everything is float32 on CPU, single-threaded,
deterministic algorithms.  The file's only metadata key is `info` (zennit and
torch versions, no date), so re-running with the same versions gives
identical bytes.

Model (eval mode).  One flat nn.Module whose children are registered in
forward order (state_dict names are the child names):

    h   = relu1(bn1(conv1(x)))                 conv1 Conv2d(1,4,3,padding=1)
    b   = bn3(conv3(relu2(bn2(conv2(h)))))     conv2, conv3 Conv2d(4,4,3,padding=1)
    s   = sum(torch.stack([h, b], dim=-1))     sum = zennit.layer.Sum() (dim -1)
    out = fc(flatten(pool(relu3(s))))          pool AvgPool2d(2) (10->5),
                                               flatten nn.Flatten, fc Linear(100,3)

  Init: torch.manual_seed(0); build the model (default init); every conv / fc
  weight and bias *= 1.5; then for bn1, bn2, bn3 in turn (same generator, no
  reseed): weight.uniform_(0.5, 1.5), bias.uniform_(-0.2, 0.2),
  running_mean.uniform_(-0.3, 0.3), running_var.uniform_(0.5, 2.0); eps 1e-5.
  Input: torch.manual_seed(0) again, then input = torch.rand(4, 1, 10, 10);
  target = [0, 1, 2, 1] (int64).

Contents
  * The model's state_dict (conv1.weight, conv1.bias, bn1.weight, bn1.bias,
    bn1.running_mean, bn1.running_var, ... conv3.*, bn3.*, fc.weight,
    fc.bias; num_batches_tracked dropped), `input`, `target`, and `logits`
    (4,3) of the plain (un-canonized, un-hooked) model.
  * folded.conv{1,2,3}.{weight,bias}: the BatchNorm-merged conv parameters as
    Zennit's canonizer sets them (read from the model while the canonizer is
    registered):  scale = bn.weight / sqrt(bn.running_var + bn.eps),
    W' = W * scale[:, None, None, None],
    b' = (b - bn.running_mean) * scale + bn.bias.
  * Input relevances (4,1,10,10), zennit.attribution.Gradient with
    attr_output = one_hot(target) * output (relevance at the output = target
    logit), canonizers=[SequentialMergeBatchNorm()]:
        epsilon_plus         EpsilonPlus()
        epsilon_gamma_box    EpsilonGammaBox(low=-1.0, high=2.0)
        epsilon_plus_nosum   EpsilonPlus(layer_map=[(Sum, None)]): the Sum gets
                             no hook, so relevance goes through its plain
                             gradient (copied unchanged to BOTH summands).

Canonizer.  SequentialMergeBatchNorm walks the model's leaves depth-first in
registration order and merges every BatchNorm that directly follows a
Linear/Conv leaf into it.  It does not need an nn.Sequential, only children
registered in forward order (which is how Zennit's own ResNetCanonizer uses it
on torchvision's BasicBlock).  Here it merges exactly conv1<-bn1, conv2<-bn2,
conv3<-bn3 (asserted).  The residual sum is already a zennit.layer.Sum module,
so nothing like ResNetBasicBlockCanonizer (which swaps in a Sum-based forward
for torchvision blocks) is needed.  After merging, the BatchNorms compute the
identity (weight 1, bias 0, mean 0, var 1) and still sit in the graph.

Zennit behaviour worth knowing (0.5.1, read from its source and confirmed by
an independent float64 chain this script checks against):
  * layer_map_base (shared by EpsilonPlus / EpsilonGammaBox): Activation (ReLU)
    -> Pass, Sum -> Norm, AvgPool -> Norm, BatchNorm -> Pass.  Conv2d -> ZPlus
    (EpsilonPlus) or Gamma(0.25) with ZBox(-1, 2) on the first conv, conv1
    (EpsilonGammaBox); Linear -> Epsilon(1e-6).  Flatten has no hook.
  * Norm (stabiliser 1e-6) is the epsilon rule of a parameter-free layer:
    R_in = x * grad_x( R_out / stab(z) ),  z = layer(x) unmodified.
      - Sum:  c = R_s / stab(s), R_h(skip) = h * c, R_b = b * c, so
        R_h(skip) + R_b = R_s up to the stabiliser.
      - AvgPool2d(2): R_i = a_i * R_j / (4 * stab(mean_j)), i.e. a_i / sum of
        the window (the 1/4 cancels); windows are 2x2, non-overlapping.
  * h feeds both the skip and conv2, and autograd adds the two relevances:
    R_h = h * R_s / stab(s) + R_h(via conv2).
  * Without the Norm rule on the Sum (epsilon_plus_nosum) the plain gradient
    copies R_s to h AND to b, so the relevance entering the block is counted
    twice (input sums grow, e.g. 0.296 -> 0.633 for example 0), and the skip
    path carries R_s unweighted by h / s.
  * Relevance is not conserved through biases (folded BN biases included); the
    script prints the relevance sums against the target logit.
"""

import copy
import os
import sys
from collections import OrderedDict
from importlib.metadata import version

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonGammaBox, EpsilonPlus
from zennit.layer import Sum

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lrp_zennit import STAB, close, ref_conv, ref_linear, stab  # noqa: E402

DATA_DIR = os.path.join("crates", "core", "tests", "data")
OUT_PATH = os.path.join(DATA_DIR, "zennit_resnet.safetensors")

ZENNIT_VERSION = "0.5.1"
LOW, HIGH = -1.0, 2.0
TARGET = [0, 1, 2, 1]
CONVS = ["conv1", "conv2", "conv3"]
BNS = ["bn1", "bn2", "bn3"]


class SmallResNet(nn.Module):
    """Children are registered in forward order, so SequentialMergeBatchNorm
    sees conv1, bn1, relu1, conv2, bn2, relu2, conv3, bn3, sum, ... as leaves."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(4)
        self.sum = Sum()
        self.relu3 = nn.ReLU()
        self.pool = nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(100, 3)

    def forward(self, x):
        h = self.relu1(self.bn1(self.conv1(x)))
        b = self.bn3(self.conv3(self.relu2(self.bn2(self.conv2(h)))))
        s = self.sum(torch.stack([h, b], dim=-1))
        return self.fc(self.flatten(self.pool(self.relu3(s))))


def build_model():
    torch.manual_seed(0)
    model = SmallResNet()
    with torch.no_grad():
        for name in CONVS + ["fc"]:
            layer = getattr(model, name)
            layer.weight.mul_(1.5)
            layer.bias.mul_(1.5)
        for name in BNS:
            bn = getattr(model, name)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
            bn.running_mean.uniform_(-0.3, 0.3)
            bn.running_var.uniform_(0.5, 2.0)
            assert bn.eps == 1e-5
    return model.eval()


def fold64(conv, bn):
    """Independent float64 BN merge."""
    w, b = conv.weight.detach().double(), conv.bias.detach().double()
    scale = bn.weight.detach().double() / (bn.running_var.double() + bn.eps) ** 0.5
    return w * scale[:, None, None, None], (b - bn.running_mean.double()) * scale + bn.bias.detach().double()


def zennit_attr(model, composite, x, target):
    """Returns (hooked output, input relevance, folded conv params)."""

    def attr_output(out):
        return F.one_hot(target, out.shape[1]).to(out) * out

    folded = OrderedDict()
    with Gradient(model=model, composite=composite, attr_output=attr_output) as attributor:
        for name in CONVS:
            conv = getattr(model, name)
            folded[f"folded.{name}.weight"] = conv.weight.detach().clone()
            folded[f"folded.{name}.bias"] = conv.bias.detach().clone()
        out, attr = attributor(x.clone())
    return out.detach(), attr.detach(), folded


def ref_chain(folded, fc, x, target, first_spec, conv_spec, norm_sum):
    """Float64 LRP chain on the folded model (BatchNorms are then identities,
    and Pass).  ReLU: Pass.  AvgPool2d, Sum: Norm (or plain gradient for the
    Sum when norm_sum is False).  Flatten: reshape."""
    convs = {}
    for name in CONVS:
        w, b = folded[f"folded.{name}.weight"].double(), folded[f"folded.{name}.bias"].double()
        c = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1).double()
        with torch.no_grad():
            c.weight.copy_(w)
            c.bias.copy_(b)
        convs[name] = c
    fc64 = copy.deepcopy(fc).double()
    x = x.double()
    with torch.no_grad():
        h = F.relu(convs["conv1"](x))
        a2 = F.relu(convs["conv2"](h))
        b = convs["conv3"](a2)
        s = h + b
        a3 = F.relu(s)
        p = F.avg_pool2d(a3, 2)
        f = p.flatten(1)
        out = fc64(f)
    r = F.one_hot(target, out.shape[1]).double() * out
    r = ref_linear(("epsilon", 1e-6), fc64, f, r).reshape(p.shape)
    # AvgPool2d(2), Norm: R_i = a_i * up(R_j / stab(mean_j)) / 4
    r = a3 * F.interpolate(r / stab(p, STAB), scale_factor=2, mode="nearest") / 4.0
    # relu3: Pass.  Sum: Norm or plain gradient.
    if norm_sum:
        c = r / stab(s, STAB)
        r_skip, r_b = h * c, b * c
    else:
        r_skip, r_b = r, r
    r = ref_conv(conv_spec, convs["conv3"], a2, r_b)  # bn3: Pass (identity)
    r = ref_conv(conv_spec, convs["conv2"], h, r)  # relu2, bn2: Pass
    r = r + r_skip  # relu1, bn1: Pass
    return ref_conv(first_spec, convs["conv1"], x, r), out


def main():
    zv = version("zennit")
    if zv != ZENNIT_VERSION:
        print(f"warning: zennit {zv}, script written against {ZENNIT_VERSION}", file=sys.stderr)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)

    model = build_model()
    torch.manual_seed(0)
    x = torch.rand(4, 1, 10, 10)
    target = torch.tensor(TARGET, dtype=torch.int64)

    out = OrderedDict()
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            out[k] = v.detach().clone()
    out["input"] = x
    out["target"] = target
    with torch.no_grad():
        logits = model(x)
    out["logits"] = logits
    tlogit = logits.gather(1, target[:, None])[:, 0]
    state_before = copy.deepcopy(model.state_dict())

    # the canonizer must merge exactly the three conv/bn pairs
    canonizer = SequentialMergeBatchNorm()
    instances = canonizer.apply(model)
    pairs = [(inst.linears[0], inst.batch_norm) for inst in instances]
    assert pairs == [(getattr(model, c), getattr(model, b)) for c, b in zip(CONVS, BNS)], pairs
    with torch.no_grad():
        canon_logits = model(x)
    for inst in instances:
        inst.remove()
    err = (canon_logits - logits).abs().max().item()
    print(f"canonized vs original logits: max |diff| = {err:.2e}")
    assert err <= 1e-5, err
    for k, v in model.state_dict().items():
        assert torch.equal(v, state_before[k]), f"canonizer did not restore {k}"

    composites = OrderedDict(
        [
            (
                "epsilon_plus",
                (
                    lambda c: EpsilonPlus(canonizers=c),
                    ("alphabeta", 1.0, 0.0),
                    ("alphabeta", 1.0, 0.0),
                    True,
                ),
            ),
            (
                "epsilon_gamma_box",
                (
                    lambda c: EpsilonGammaBox(low=LOW, high=HIGH, canonizers=c),
                    ("zbox", LOW, HIGH),
                    ("gamma", 0.25),
                    True,
                ),
            ),
            (
                "epsilon_plus_nosum",
                (
                    lambda c: EpsilonPlus(layer_map=[(Sum, None)], canonizers=c),
                    ("alphabeta", 1.0, 0.0),
                    ("alphabeta", 1.0, 0.0),
                    False,
                ),
            ),
        ]
    )
    print("sum of input relevance vs target logit (per example):")
    print(f"  target logit         {[round(v, 6) for v in tlogit.tolist()]}")
    folded_ref = None
    for name, (make, first_spec, conv_spec, norm_sum) in composites.items():
        o, attr, folded = zennit_attr(model, make([SequentialMergeBatchNorm()]), x, target)
        err = (o - logits).abs().max().item()
        assert err <= 1e-5, f"{name}: canonized+hooked logits differ by {err:.2e}"
        for k, v in model.state_dict().items():
            assert torch.equal(v, state_before[k]), f"{name}: canonizer did not restore {k}"
        with torch.no_grad():
            assert torch.equal(model(x), logits), name  # hooks gone
        if folded_ref is None:
            folded_ref = folded
            for conv, bn in zip(CONVS, BNS):
                w64, b64 = fold64(getattr(model, conv), getattr(model, bn))
                ok_w, ew = close(folded[f"folded.{conv}.weight"], w64, 1e-6)
                ok_b, eb = close(folded[f"folded.{conv}.bias"], b64, 1e-6)
                assert ok_w and ok_b, (conv, ew, eb)
                print(f"  folded {conv} vs float64 merge: |dW| = {ew:.1e}, |db| = {eb:.1e}")
            out.update(folded)
        else:
            for k, v in folded.items():
                assert torch.equal(v, folded_ref[k]), k
        ref, ref_out = ref_chain(folded, model.fc, x, target, first_spec, conv_spec, norm_sum)
        assert torch.allclose(ref_out, logits.double(), atol=1e-5), name
        ok, err = close(attr, ref, 1e-4)
        assert ok, f"{name}: zennit vs float64 chain, max err {err:.3e}"
        sums = attr.sum(dim=(1, 2, 3))
        print(f"  {name:20s} {[round(v, 6) for v in sums.tolist()]}   |zennit - ref64| = {err:.1e}")
        out[name] = attr

    assert not torch.allclose(out["epsilon_plus"], out["epsilon_plus_nosum"], atol=1e-3)

    # determinism: a second run gives identical bits
    _, again, _ = zennit_attr(model, EpsilonPlus(canonizers=[SequentialMergeBatchNorm()]), x, target)
    assert torch.equal(again, out["epsilon_plus"])

    out = {k: v.contiguous() for k, v in out.items()}
    info = f"zennit {zv}; torch {torch.__version__}; generated by scripts/golden/lrp_zennit_resnet.py"
    save_file(out, OUT_PATH, metadata={"info": info})
    print(f"wrote {OUT_PATH}: {len(out)} tensors ({info})")
    for k, v in out.items():
        print(f"  {k:24s} {tuple(v.shape)} {v.dtype}")


if __name__ == "__main__":
    main()
