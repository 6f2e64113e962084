"""Golden reference attributions from Captum for candle-explain's core crate.

Produces
    crates/core/tests/data/captum_cnn.safetensors

containing the weights of a small seeded CNN, a batch of 4 inputs, their
targets and logits, and the attributions that Captum computes for them with
Saliency, InputXGradient, IntegratedGradients (several quadrature rules),
DeepLift, LRP, GuidedBackprop, Deconvolution, Occlusion, FeatureAblation and
ShapleyValues.  Safetensors metadata records the torch / captum versions and
the date of generation.

Run from the repository root with the project's Python venv:

    /work/venv/bin/python scripts/golden/core_captum.py

(needs torch, captum 0.9, numpy, safetensors).  Everything is computed in
float32 on CPU, single-threaded and with deterministic algorithms (relaxed
only around DeepLift, whose max-pool rule uses max_unpool2d); the script
asserts a few invariants (DeepLift completeness, Occlusion == direct output
drop, Shapley efficiency, ...) before writing, so a written file is
self-checked.

Model (eval mode):
    conv1 Conv2d(1,4,3) -> relu1 -> conv2 Conv2d(4,6,3,padding=1) -> relu2
    -> pool MaxPool2d(2) -> x.flatten(1) -> fc1 Linear(96,16) -> relu3
    -> fc2 Linear(16,3)
Weights: default PyTorch init after torch.manual_seed(0), then every weight
and bias multiplied by 1.5.  Input: torch.rand(4,1,10,10) drawn right after.

Notes on Captum:
  * Every ReLU is a distinct nn.ReLU module (DeepLift and LRP hook modules and
    require each to be used once).
  * LRP accepts the functional `x.flatten(1)` as is: it only hooks leaf child
    modules and relevance passes through the reshape via autograd.  An
    nn.Flatten module would actually be *rejected* by LRP (TypeError: no rule
    for that module type), so the flatten is kept functional.
  * LRP's default rules: EpsilonRule(epsilon=1e-9) for Conv2d, Linear and
    MaxPool2d; ReLU passes relevance through unchanged.  Captum scales the
    propagated relevance by the model output at the target, so the relevance
    at the output equals the target logit.
"""

import copy
import datetime
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

import captum
from captum.attr import (
    LRP,
    Deconvolution,
    DeepLift,
    FeatureAblation,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    Occlusion,
    Saliency,
    ShapleyValues,
)

OUT_PATH = os.path.join("crates", "core", "tests", "data", "captum_cnn.safetensors")


class SmallCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)  # (N,1,10,10) -> (N,4,8,8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)  # -> (N,6,8,8)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)  # -> (N,6,4,4)
        self.fc1 = nn.Linear(96, 16)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        x = self.pool(x)
        x = x.flatten(1)  # functional on purpose, see module docstring
        x = self.relu3(self.fc1(x))
        return self.fc2(x)


class SmallCnnPoolRule(SmallCnn):
    """Same network; `+ 0` gives the pool its own input tensor.

    With `relu2 -> pool` sharing one tensor, Captum's DeepLift hooks on that
    tensor fire in registration order: relu2's grad_output capture runs
    *before* the pool's input hook substitutes the max-pool rule's
    multipliers, so relu2 rescales the plain max-pool gradient and the
    max-pool rule's result is discarded.  Breaking the tensor sharing makes
    Captum apply its max-pool rule (and DeepLift becomes complete).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        x = self.pool(x + 0)
        x = x.flatten(1)
        x = self.relu3(self.fc1(x))
        return self.fc2(x)


def f32(t: torch.Tensor) -> torch.Tensor:
    assert t.dtype == torch.float32, t.dtype
    return t.detach().contiguous().clone()


def main() -> None:
    warnings.filterwarnings("ignore", message=".*did not already require gradients.*")
    warnings.filterwarnings("ignore", message=".*hooks and attributes on non-linear.*")
    warnings.filterwarnings("ignore", message=".*Setting backward hooks on ReLU.*")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)

    model = SmallCnn()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    inp = torch.rand(4, 1, 10, 10)
    target = torch.tensor([0, 1, 2, 1], dtype=torch.int64)
    zeros = torch.zeros_like(inp)

    def x() -> torch.Tensor:
        # fresh copy per call: Captum toggles requires_grad on its inputs
        return inp.clone()

    with torch.no_grad():
        logits = model(inp)
    assert logits.dtype == torch.float32

    out: dict[str, torch.Tensor] = {}
    for name, p in model.state_dict().items():
        out[name] = f32(p)
    out["input"] = f32(inp)
    out["target"] = target.clone()
    out["logits"] = f32(logits)

    # --- gradient methods -------------------------------------------------
    out["saliency_abs"] = f32(Saliency(model).attribute(x(), target=target))
    out["saliency_signed"] = f32(
        Saliency(model).attribute(x(), target=target, abs=False)
    )
    out["input_x_gradient"] = f32(InputXGradient(model).attribute(x(), target=target))

    ig = IntegratedGradients(model)
    a, d = ig.attribute(
        x(),
        baselines=zeros,
        target=target,
        n_steps=50,
        method="gausslegendre",
        return_convergence_delta=True,
    )
    out["ig_gl50"] = f32(a)
    out["ig_gl50_delta"] = f32(d)
    for key, method in [
        ("ig_left20", "riemann_left"),
        ("ig_right20", "riemann_right"),
        ("ig_middle20", "riemann_middle"),
        ("ig_trap20", "riemann_trapezoid"),
    ]:
        out[key] = f32(
            ig.attribute(x(), baselines=zeros, target=target, n_steps=20, method=method)
        )
    out["ig_const_gl32"] = f32(
        ig.attribute(
            x(),
            baselines=torch.full_like(inp, 0.5),
            target=target,
            n_steps=32,
            method="gausslegendre",
        )
    )

    # --- DeepLift ---------------------------------------------------------
    # Captum's DeepLift max-pool rule calls max_unpool2d, which PyTorch flags
    # as nondeterministic (it scatters; only duplicate indices would race, and
    # non-overlapping 2x2 pooling has none).  Relax determinism just here.
    #
    # deeplift_zero / deeplift_const are Captum on the model exactly as
    # specified.  Because relu2 feeds the pool directly, Captum effectively
    # back-propagates the *plain* max-pool gradient (route to the argmax of
    # the input window) and applies Rescale only at the ReLUs, so these are
    # NOT complete (|delta| ~ 1e-2).  The *_poolrule tensors are the same
    # computation with Captum's max-pool rule actually in effect (see
    # SmallCnnPoolRule); those satisfy completeness to < 1e-4.
    ref03 = torch.full_like(inp, 0.3)
    pool_rule_model = SmallCnnPoolRule()
    pool_rule_model.load_state_dict(model.state_dict())
    pool_rule_model.eval()
    torch.use_deterministic_algorithms(False)
    for tag, net in [("deeplift", model), ("poolrule", pool_rule_model)]:
        sfx = "" if tag == "deeplift" else "_poolrule"
        a, d = DeepLift(copy.deepcopy(net)).attribute(
            x(), baselines=zeros, target=target, return_convergence_delta=True
        )
        out["deeplift_zero" + sfx] = f32(a)
        out["deeplift_zero" + sfx + "_delta"] = f32(d)
        a, d = DeepLift(copy.deepcopy(net)).attribute(
            x(), baselines=ref03, target=target, return_convergence_delta=True
        )
        out["deeplift_const" + sfx] = f32(a)
        out["deeplift_const" + sfx + "_delta"] = f32(d)
    torch.use_deterministic_algorithms(True)

    # --- LRP (on a copy: LRP attaches / removes rules and reloads state) ---
    out["lrp_eps"] = f32(LRP(copy.deepcopy(model)).attribute(x(), target=target))

    # --- modified-backprop methods ---------------------------------------
    out["guided_backprop"] = f32(GuidedBackprop(model).attribute(x(), target=target))
    out["deconvolution"] = f32(Deconvolution(model).attribute(x(), target=target))

    # --- perturbation methods --------------------------------------------
    occ = Occlusion(model)
    out["occlusion_1"] = f32(
        occ.attribute(
            x(),
            sliding_window_shapes=(1, 1, 1),
            strides=(1, 1, 1),
            baselines=0,
            target=target,
        )
    )
    out["occlusion_w3s1"] = f32(
        occ.attribute(
            x(),
            sliding_window_shapes=(1, 3, 3),
            strides=(1, 1, 1),
            baselines=0,
            target=target,
        )
    )
    out["occlusion_w2s2"] = f32(
        occ.attribute(
            x(),
            sliding_window_shapes=(1, 2, 2),
            strides=(1, 2, 2),
            baselines=0,
            target=target,
        )
    )

    feature_mask = torch.zeros(1, 1, 10, 10, dtype=torch.int64)
    feature_mask[..., :5, 5:] = 1
    feature_mask[..., 5:, :5] = 2
    feature_mask[..., 5:, 5:] = 3
    out["feature_mask"] = feature_mask
    out["feature_ablation"] = f32(
        FeatureAblation(model).attribute(
            x(), baselines=0, target=target, feature_mask=feature_mask
        )
    )
    out["shapley_exact"] = f32(
        ShapleyValues(model).attribute(
            x(), baselines=0, target=target, feature_mask=feature_mask
        )
    )

    # --- self checks -------------------------------------------------------
    rows = torch.arange(4)

    def fwd_t(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(z)[rows, target]

    f_x = fwd_t(inp)
    f_0 = fwd_t(zeros)

    for k, v in out.items():
        if v.dtype.is_floating_point:
            assert torch.isfinite(v).all(), k
    for k in [
        "saliency_abs", "saliency_signed", "input_x_gradient", "ig_gl50",
        "ig_left20", "ig_right20", "ig_middle20", "ig_trap20", "ig_const_gl32",
        "deeplift_zero", "deeplift_const", "lrp_eps", "guided_backprop",
        "deconvolution", "occlusion_1", "occlusion_w3s1", "occlusion_w2s2",
        "feature_ablation", "shapley_exact",
    ]:
        assert out[k].shape == inp.shape, (k, out[k].shape)
    assert out["ig_gl50_delta"].shape == (4,)
    assert out["deeplift_zero_delta"].shape == (4,)
    assert (out["saliency_abs"] >= 0).all()
    assert torch.equal(out["saliency_abs"], out["saliency_signed"].abs())

    # DeepLift.  Captum's delta is sum(attr) - (f(x) - f(ref)).
    #  * *_poolrule (Captum's max-pool rule in effect): complete, |delta| < 1e-4.
    #  * as-specified model: the delta is exactly what plain max-pool gradient
    #    routing loses.  Per pooled unit with DeepLift multiplier m (from the
    #    complete sub-network above the pool), Captum credits m * (y - r[i*])
    #    instead of m * (y - y_ref), where i* is the argmax of the *input*
    #    window and r the reference activations, so
    #    delta = sum m * (y_ref - r[i*]).  Checked against an independent
    #    DeepLift run on the sub-network fc1 -> relu3 -> fc2.
    class Upper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = copy.deepcopy(model.fc1)
            self.relu3 = nn.ReLU()
            self.fc2 = copy.deepcopy(model.fc2)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.fc2(self.relu3(self.fc1(z)))

    def pool_input(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.relu2(model.conv2(model.relu1(model.conv1(z))))

    for name, ref in [("zero", zeros), ("const", ref03)]:
        f_ref = fwd_t(ref)
        for sfx in ["", "_poolrule"]:
            attr = out[f"deeplift_{name}{sfx}"]
            delta = out[f"deeplift_{name}{sfx}_delta"]
            assert torch.allclose(
                attr.sum(dim=(1, 2, 3)) - (f_x - f_ref), delta, atol=1e-5
            ), (name, sfx)
        d_rule = out[f"deeplift_{name}_poolrule_delta"]
        assert d_rule.abs().max() < 1e-4, (name, d_rule)

        a_in, a_ref = pool_input(inp), pool_input(ref)
        y, idx = F.max_pool2d(a_in, 2, return_indices=True)
        y_ref = F.max_pool2d(a_ref, 2)
        r_at = a_ref.flatten(2).gather(2, idx.flatten(2)).view_as(y)
        up = DeepLift(Upper().eval())
        up_attr, up_delta = up.attribute(
            y.flatten(1).clone(), baselines=y_ref.flatten(1), target=target,
            return_convergence_delta=True)
        assert up_delta.abs().max() < 1e-4, up_delta
        mult = DeepLift(Upper().eval(), multiply_by_inputs=False).attribute(
            y.flatten(1).clone(), baselines=y_ref.flatten(1), target=target)
        predicted = (mult * (y_ref - r_at).flatten(1)).sum(1)
        delta = out[f"deeplift_{name}_delta"]
        assert torch.allclose(delta, predicted, atol=1e-5), (name, delta, predicted)
        print(f"  deeplift_{name}: delta {[round(v, 6) for v in delta.tolist()]} "
              f"(predicted {[round(v, 6) for v in predicted.tolist()]}); "
              f"poolrule delta max {d_rule.abs().max().item():.2e}")

    # Occlusion 1x1 == direct output drop for a few pixels
    for (i, j) in [(0, 0), (3, 7), (5, 5), (9, 2)]:
        z = inp.clone()
        z[:, 0, i, j] = 0.0
        drop = f_x - fwd_t(z)
        assert torch.allclose(out["occlusion_1"][:, 0, i, j], drop, atol=1e-6, rtol=1e-5), (
            i, j, out["occlusion_1"][:, 0, i, j], drop)

    # Feature ablation == output drop per quadrant; Shapley efficiency
    for g in range(4):
        z = inp.clone()
        z[feature_mask.expand_as(z) == g] = 0.0
        drop = f_x - fwd_t(z)
        got = out["feature_ablation"][feature_mask.expand_as(inp) == g].view(4, -1)
        assert torch.allclose(got, drop[:, None].expand_as(got), atol=1e-6, rtol=1e-5)
    shap_sum = torch.stack(
        [out["shapley_exact"][:, 0][feature_mask[0, 0].expand(4, 10, 10) == g].view(4, -1)[:, 0]
         for g in range(4)], dim=1).sum(1)
    assert torch.allclose(shap_sum, f_x - f_0, atol=1e-5), (shap_sum, f_x - f_0)

    # IG completeness is approximate (ReLU/max-pool kinks); just sanity-bound it
    assert out["ig_gl50_delta"].abs().max() < 0.05 * (f_x - f_0).abs().max() + 1e-3

    # InputXGradient == input * signed saliency
    assert torch.allclose(out["input_x_gradient"], inp * out["saliency_signed"])

    meta = {
        "torch": torch.__version__,
        "captum": captum.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "generator": "scripts/golden/core_captum.py",
    }

    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    save_file(out, OUT_PATH, metadata=meta)
    print(f"wrote {OUT_PATH}")
    for k, v in out.items():
        print(f"  {k:22s} {str(v.dtype):14s} {tuple(v.shape)}")
    print(f"  meta: {meta}")
    print(f"  ig_gl50_delta       = {out['ig_gl50_delta'].tolist()}")


if __name__ == "__main__":
    main()
