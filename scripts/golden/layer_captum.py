"""Golden reference values from Captum's layer, neuron and surrogate methods.

Produces
    crates/core/tests/data/captum_layer.safetensors

for the same small CNN as scripts/golden/core_captum.py (class SmallCnn /
SmallCnnPoolRule are imported from that script; weights, `input` (4,1,10,10)
and `target` (int64, 4) are *loaded* from the file it wrote,
crates/core/tests/data/captum_cnn.safetensors, so the models are identical).
Safetensors metadata records the python / torch / captum / numpy /
scikit-learn versions and the date of generation.

Run from the repository root with the project's Python venv:

    /work/venv/bin/python scripts/golden/layer_captum.py

(needs torch, captum 0.9, numpy, safetensors, scikit-learn; generated with
torch 2.15.0, captum 0.9.0, scikit-learn 1.9.1, numpy 2.4.6).  float32, CPU,
torch.set_num_threads(1), deterministic algorithms (relaxed only around
DeepLift, whose max-pool rule calls max_unpool2d).  The script asserts a few
invariants before writing, so a written file is self-checked.

Keys (float32 unless noted; B = 4 examples; conv2 output is (B,6,8,8),
fc1 output (B,16); "layer" = the module's *output*, i.e. pre-ReLU):
    layer_gxa_conv2 / layer_gxa_fc1            LayerGradientXActivation
    layer_ig_{conv2,fc1}_gl50 (+ _delta (B,))  LayerIntegratedGradients, zeros
    layer_conductance_conv2_{gl50,trap50}      LayerConductance, zeros
    internal_influence_conv2_gl50              InternalInfluence, zeros
    neuron_gradient_conv2                      NeuronGradient, neuron (2,3,4)
    neuron_ig_conv2_gl50                       NeuronIntegratedGradients, zeros
    neuron_conductance_conv2_{gl50,trap50}     NeuronConductance, zeros, target
        (identically 0: conv2 channel 2 is dead on this model, dF/dy_n = 0)
    neuron_alt (int64 (3,) = [0,1,6]), neuron_conductance_conv2_016_{gl50,trap50}
                                               the same at neuron (0,1,6)
    layer_lrp_conv2 / layer_lrp_fc1            LayerLRP (EpsilonRule 1e-9)
    layer_deeplift_{conv2,fc1}_poolrule        LayerDeepLift, zeros, pool rule on
    dls_baselines (5,1,10,10), deep_lift_shap_poolrule   DeepLiftShap
    ks_mask (int64 (1,1,10,10)), ks_coalitions (int64 (66,)), kernel_shap_fixed
    lime_coalitions (int64 (100,)), lime_fixed
All attributions of input-shaped methods are (B,1,10,10); the neuron
(2,3,4) is conv2's output channel 2, row 3, column 4 (used by
NeuronGradient / NeuronIntegratedGradients, which are non-zero).

Captum formulas relied on (captum 0.9.0; x' the baseline, a_k the alphas,
w_k the step sizes, y(.) the layer output as a function of the model input,
F the target logit):
  * "gausslegendre": a_k = (1 + t_k) / 2, w_k = v_k / 2 with (t_k, v_k) =
    numpy.polynomial.legendre.leggauss(n) (float64); "riemann_trapezoid":
    a_k = torch.linspace(0, 1, n).tolist() (float32 values), w_k = 1/n with
    w_0 and w_{n-1} halved (sum (n-1)/n, a Captum quirk: not 1/(n-1)).
    (captum/attr/_utils/approximation_methods.py)
  * LayerIntegratedGradients: IG in the layer's activation space between
    y(x') and y(x): (y(x) - y(x')) * sum_k w_k dF/dy(y(x') + a_k (y(x)-y(x'))).
    delta = sum(attr) - (F(x) - F(x')).
  * LayerConductance (default method gausslegendre): n_steps+1 alphas of the
    method, a_0..a_n (for trapezoid: linspace(0,1,n+1), for GL: the n+1 GL
    nodes, *no* step sizes used); input path points p_k = x' + a_k (x - x');
    attr = sum_{k=0}^{n-1} dF/dy(p_k) * (y(p_{k+1}) - y(p_k)).
  * InternalInfluence: sum_k w_k dF/dy(p_k) (input path, n points, no
    multiplication by activations).
  * NeuronConductance (default method riemann_trapezoid, here set
    explicitly): (x - x') * sum_k w_k * dF/dy_n(p_k) * dy_n/dx(p_k), y_n the
    selected neuron, n points.
  * NeuronIntegratedGradients: plain IG of y_n w.r.t. the input.
  * LayerDeepLift: (y(x) - y(x')) * m, m = DeepLift multiplier of F w.r.t.
    the layer output (gradient with the Rescale / max-pool rules above it).
  * LayerLRP: relevance at the layer output = (grad arriving at the layer
    output in the LRP backward pass, i.e. normalised relevance) * F(x).
  * DeepLiftShap: mean over the baselines b_j of DeepLift(x, b_j).
  * KernelShap: Lime with similarity 1e6 for the empty / full coalition
    and 1.0 otherwise (the Shapley kernel is in the sampling distribution
    p(k) ~ (M-1)/(k(M-k)), k = 1..M-1), interpretable model
    sklearn LinearRegression (fit_intercept=True) fitted with
    sample_weight = similarity; attributions = coefficients.
  * Lime: similarity exp(-d^2 / (2 kw^2)), d = 1 - cos(x, x_pert) (torch
    CosineSimilarity(dim=0): x.y / (max(|x|,1e-8) max(|y|,1e-8))), kw = 1.0;
    here with sklearn
    LinearRegression (weighted, with intercept).
  Both KernelShap and Lime fit one surrogate per example; Captum creates a
  fresh generator from perturb_func for every example, so each of the 4
  examples sees the same coalitions in the same order (asserted below).
  Coalition bit i set = feature group i present (input kept), cleared =
  group replaced by the baseline 0.

Data choices:
  * "pool rule on" = SmallCnnPoolRule (pool(x + 0)), the arrangement under
    which Captum's DeepLift max-pool rule actually takes effect (see
    core_captum.py); LayerDeepLift / DeepLiftShap use it, multiply_by_inputs
    True, and are complete (|delta| < 1e-4, asserted).
  * ks_mask: group = 4 * (row >= 5) + column block, blocks [0,3), [3,6),
    [6,8), [8,10).
  * ks_coalitions: full (255), empty (0), then 64 draws of Captum's own
    KernelShap.kernel_shap_perturb_generator (its 3rd.. yields) after
    torch.manual_seed(KS_SEED), with the Categorical(probs) KernelShap builds.
    kernel_shap_fixed replaces KernelShap.perturb_func by a generator
    function yielding exactly these as (1, 8) long tensors; n_samples = 66.
  * lime_coalitions: torch.randint(0, 256, (100,)) with Generator(LIME_SEED)
    (each group on with probability 1/2); lime_fixed: Lime with the default
    similarity, SkLearnLinearRegression(), those coalitions, n_samples=100.
  * dls_baselines: torch.rand(5,1,10,10, generator=Generator(DLS_SEED)) * 0.5.
  The safetensors header's metadata order may differ between runs (the
  tensors are bit-identical).
"""

import copy
import datetime
import inspect
import os
import sys
import warnings

import numpy as np
import sklearn
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import save_file
from torch.distributions.categorical import Categorical

import captum
from captum._utils.models.linear_model import SkLearnLinearRegression
from captum.attr import (
    LRP,
    DeepLift,
    DeepLiftShap,
    InternalInfluence,
    KernelShap,
    LayerConductance,
    LayerDeepLift,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    LayerLRP,
    Lime,
    NeuronConductance,
    NeuronGradient,
    NeuronIntegratedGradients,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from core_captum import SmallCnn, SmallCnnPoolRule  # noqa: E402

IN_PATH = os.path.join("crates", "core", "tests", "data", "captum_cnn.safetensors")
OUT_PATH = os.path.join("crates", "core", "tests", "data", "captum_layer.safetensors")

NEURON = (2, 3, 4)
# conv2 channel 2 is dead on this model (pre-ReLU max 1.7e-4 over the batch,
# never active along the paths), so dF/dy_n = 0 and NeuronConductance at
# NEURON is identically 0.  NEURON_ALT is a neuron with non-zero conductance
# for all four examples; its NeuronConductance is stored as well.
NEURON_ALT = (0, 1, 6)
N_GROUPS = 8
KS_SEED = 20240607
LIME_SEED = 7
DLS_SEED = 1234


def f32(t: torch.Tensor) -> torch.Tensor:
    assert t.dtype == torch.float32, t.dtype
    return t.detach().contiguous().clone()


def bits_to_row(c: int) -> torch.Tensor:
    return torch.tensor([[(c >> i) & 1 for i in range(N_GROUPS)]], dtype=torch.long)


def row_to_bits(row: torch.Tensor) -> int:
    row = row.flatten().tolist()
    assert len(row) == N_GROUPS and all(v in (0, 1) for v in row), row
    return sum(int(v) << i for i, v in enumerate(row))


def main() -> None:
    warnings.filterwarnings("ignore", message=".*did not already require gradients.*")
    warnings.filterwarnings("ignore", message=".*hooks and attributes on non-linear.*")
    warnings.filterwarnings("ignore", message=".*Setting backward hooks on ReLU.*")
    warnings.filterwarnings("ignore", message=".*multiple inputs for Lime.*")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    # --- model, input, target from core_captum.py's file -------------------
    with safe_open(IN_PATH, "pt") as f:
        src = {k: f.get_tensor(k) for k in f.keys()}
    model = SmallCnn()
    model.load_state_dict({k: src[k] for k in model.state_dict().keys()})
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    pool_rule_model = SmallCnnPoolRule()
    pool_rule_model.load_state_dict(model.state_dict())
    pool_rule_model.eval()
    for p in pool_rule_model.parameters():
        p.requires_grad_(False)

    inp = src["input"]
    target = src["target"]
    assert inp.dtype == torch.float32 and inp.shape == (4, 1, 10, 10)
    assert target.dtype == torch.int64 and target.shape == (4,)
    zeros = torch.zeros_like(inp)
    with torch.no_grad():
        logits = model(inp)
        assert torch.equal(logits, src["logits"]), "model differs from captum_cnn"
        assert torch.equal(pool_rule_model(inp), logits)

    def x() -> torch.Tensor:
        return inp.clone()

    rows = torch.arange(4)

    def fwd_t(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(z)[rows, target]

    f_x = fwd_t(inp)
    f_0 = fwd_t(zeros)

    out: dict[str, torch.Tensor] = {}

    # --- gradient x activation -----------------------------------------------
    out["layer_gxa_conv2"] = f32(
        LayerGradientXActivation(model, model.conv2).attribute(x(), target=target))
    out["layer_gxa_fc1"] = f32(
        LayerGradientXActivation(model, model.fc1).attribute(x(), target=target))

    # --- layer integrated gradients -----------------------------------------
    for name in ["conv2", "fc1"]:
        a, d = LayerIntegratedGradients(model, getattr(model, name)).attribute(
            x(), baselines=zeros, target=target, n_steps=50,
            method="gausslegendre", return_convergence_delta=True)
        out[f"layer_ig_{name}_gl50"] = f32(a)
        out[f"layer_ig_{name}_gl50_delta"] = f32(d)

    # --- conductance / internal influence -----------------------------------
    lc = LayerConductance(model, model.conv2)
    lc_delta = {}
    for tag, method in [("gl50", "gausslegendre"), ("trap50", "riemann_trapezoid")]:
        a, d = lc.attribute(x(), baselines=zeros, target=target, n_steps=50,
                            method=method, return_convergence_delta=True)
        out[f"layer_conductance_conv2_{tag}"] = f32(a)
        lc_delta[tag] = d
    out["internal_influence_conv2_gl50"] = f32(
        InternalInfluence(model, model.conv2).attribute(
            x(), baselines=zeros, target=target, n_steps=50, method="gausslegendre"))

    # --- neuron methods ------------------------------------------------------
    out["neuron_gradient_conv2"] = f32(
        NeuronGradient(model, model.conv2).attribute(x(), neuron_selector=NEURON))
    out["neuron_ig_conv2_gl50"] = f32(
        NeuronIntegratedGradients(model, model.conv2).attribute(
            x(), neuron_selector=NEURON, baselines=zeros, n_steps=50,
            method="gausslegendre"))
    nc = NeuronConductance(model, model.conv2)
    alt = "".join(str(i) for i in NEURON_ALT)
    for tag, method in [("gl50", "gausslegendre"), ("trap50", "riemann_trapezoid")]:
        out[f"neuron_conductance_conv2_{tag}"] = f32(
            nc.attribute(x(), neuron_selector=NEURON, baselines=zeros,
                         target=target, n_steps=50, method=method))
        out[f"neuron_conductance_conv2_{alt}_{tag}"] = f32(
            nc.attribute(x(), neuron_selector=NEURON_ALT, baselines=zeros,
                         target=target, n_steps=50, method=method))
    out["neuron_alt"] = torch.tensor(NEURON_ALT, dtype=torch.int64)

    # --- LayerLRP (on copies: LRP attaches rules and reloads state) ---------
    # Default rules, as in core_captum.py's LRP: EpsilonRule(1e-9) on Conv2d,
    # Linear, MaxPool2d; ReLU passes relevance through.
    lrp_delta = {}
    for name in ["conv2", "fc1"]:
        m = copy.deepcopy(model)
        a, d = LayerLRP(m, getattr(m, name)).attribute(
            x(), target=target, return_convergence_delta=True)
        out[f"layer_lrp_{name}"] = f32(a)
        lrp_delta[name] = d

    # --- LayerDeepLift / DeepLiftShap with the max-pool rule in effect ------
    torch.use_deterministic_algorithms(False)
    ldl_delta = {}
    for name in ["conv2", "fc1"]:
        m = copy.deepcopy(pool_rule_model)
        # LayerDeepLift leaves requires_grad to the caller; its model
        # pre-hook registers a tensor hook on the (concatenated) input.
        a, d = LayerDeepLift(m, getattr(m, name)).attribute(
            x().requires_grad_(True), baselines=zeros, target=target, return_convergence_delta=True)
        out[f"layer_deeplift_{name}_poolrule"] = f32(a)
        ldl_delta[name] = d
    g = torch.Generator().manual_seed(DLS_SEED)
    dls_baselines = torch.rand(5, 1, 10, 10, generator=g) * 0.5
    out["dls_baselines"] = f32(dls_baselines)
    a, dls_d = DeepLiftShap(copy.deepcopy(pool_rule_model)).attribute(
        x(), baselines=dls_baselines.clone(), target=target,
        return_convergence_delta=True)
    out["deep_lift_shap_poolrule"] = f32(a)
    # per-baseline DeepLift, for the mean check below
    dl_each = torch.stack([
        DeepLift(copy.deepcopy(pool_rule_model)).attribute(
            x(), baselines=dls_baselines[j:j + 1].expand_as(inp).clone(), target=target)
        for j in range(5)])
    torch.use_deterministic_algorithms(True)

    # --- KernelShap / Lime with fixed coalitions -----------------------------
    rr = torch.arange(10).view(10, 1).expand(10, 10)
    cc = torch.arange(10).view(1, 10).expand(10, 10)
    col_block = (cc >= 3).long() + (cc >= 6).long() + (cc >= 8).long()
    ks_mask = (4 * (rr >= 5).long() + col_block).view(1, 1, 10, 10).to(torch.int64)
    assert sorted(ks_mask.unique().tolist()) == list(range(N_GROUPS))
    out["ks_mask"] = ks_mask.clone()

    # 64 coalitions drawn by Captum's own KernelShap sampler (same probs as
    # KernelShap.attribute builds, captum/attr/_core/kernel_shap.py)
    ks = KernelShap(model)
    nfl = torch.arange(N_GROUPS, dtype=torch.float)
    probs = torch.tensor((N_GROUPS - 1)) / (nfl * (N_GROUPS - nfl))
    probs[0] = 0.0
    torch.manual_seed(KS_SEED)
    sampler = ks.kernel_shap_perturb_generator(
        inp[0:1], num_select_distribution=Categorical(probs),
        num_interp_features=N_GROUPS)
    drawn = [row_to_bits(next(sampler)) for _ in range(66)]
    full = (1 << N_GROUPS) - 1
    assert drawn[0] == full and drawn[1] == 0
    assert all(0 < c < full for c in drawn[2:])
    ks_coalitions = drawn
    out["ks_coalitions"] = torch.tensor(ks_coalitions, dtype=torch.int64)

    g = torch.Generator().manual_seed(LIME_SEED)
    lime_coalitions = torch.randint(0, 1 << N_GROUPS, (100,), generator=g).tolist()
    out["lime_coalitions"] = torch.tensor(lime_coalitions, dtype=torch.int64)

    def make_fixed(coalitions: list[int], log: list[int]):
        def fixed_perturb(original_inp, **kwargs):
            log.append(0)
            for c in coalitions:
                log[-1] += 1
                yield bits_to_row(c)
        assert inspect.isgeneratorfunction(fixed_perturb)
        return fixed_perturb

    ks_log: list[int] = []
    ks.perturb_func = make_fixed(ks_coalitions, ks_log)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "Generator completed..."
        warnings.filterwarnings("ignore", message=".*multiple inputs for Lime.*")
        out["kernel_shap_fixed"] = f32(ks.attribute(
            x(), baselines=0, target=target, feature_mask=ks_mask, n_samples=66))
    # one fresh generator per example, each consumed exactly 66 times
    assert ks_log == [66, 66, 66, 66], ks_log

    lime_log: list[int] = []
    lime = Lime(model, interpretable_model=SkLearnLinearRegression(),
                perturb_func=make_fixed(lime_coalitions, lime_log))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", message=".*multiple inputs for Lime.*")
        out["lime_fixed"] = f32(lime.attribute(
            x(), baselines=0, target=target, feature_mask=ks_mask, n_samples=100))
    assert lime_log == [100, 100, 100, 100], lime_log

    # --- self checks -----------------------------------------------------------
    for k, v in out.items():
        if v.dtype.is_floating_point:
            assert torch.isfinite(v).all(), k
    shapes = {
        "layer_gxa_conv2": (4, 6, 8, 8), "layer_gxa_fc1": (4, 16),
        "layer_ig_conv2_gl50": (4, 6, 8, 8), "layer_ig_fc1_gl50": (4, 16),
        "layer_ig_conv2_gl50_delta": (4,), "layer_ig_fc1_gl50_delta": (4,),
        "layer_conductance_conv2_gl50": (4, 6, 8, 8),
        "layer_conductance_conv2_trap50": (4, 6, 8, 8),
        "internal_influence_conv2_gl50": (4, 6, 8, 8),
        "neuron_gradient_conv2": (4, 1, 10, 10), "neuron_ig_conv2_gl50": (4, 1, 10, 10),
        "neuron_conductance_conv2_gl50": (4, 1, 10, 10),
        "neuron_conductance_conv2_trap50": (4, 1, 10, 10),
        f"neuron_conductance_conv2_{alt}_gl50": (4, 1, 10, 10),
        f"neuron_conductance_conv2_{alt}_trap50": (4, 1, 10, 10), "neuron_alt": (3,),
        "layer_lrp_conv2": (4, 6, 8, 8), "layer_lrp_fc1": (4, 16),
        "layer_deeplift_conv2_poolrule": (4, 6, 8, 8),
        "layer_deeplift_fc1_poolrule": (4, 16),
        "dls_baselines": (5, 1, 10, 10), "deep_lift_shap_poolrule": (4, 1, 10, 10),
        "ks_mask": (1, 1, 10, 10), "ks_coalitions": (66,),
        "kernel_shap_fixed": (4, 1, 10, 10),
        "lime_coalitions": (100,), "lime_fixed": (4, 1, 10, 10),
    }
    assert set(shapes) == set(out), set(shapes) ^ set(out)
    for k, s in shapes.items():
        assert tuple(out[k].shape) == s, (k, out[k].shape, s)

    def per_ex(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(t.shape[0], -1).sum(1)

    def layer_out(z: torch.Tensor, name: str) -> torch.Tensor:
        with torch.no_grad():
            h = model.conv2(model.relu1(model.conv1(z)))
            if name == "conv2":
                return h
            return model.fc1(model.pool(model.relu2(h)).flatten(1))

    # gradient x activation == activation * autograd gradient
    for name in ["conv2", "fc1"]:
        act = layer_out(inp, name).requires_grad_(True)
        with torch.enable_grad():
            if name == "conv2":
                o = model.fc2(model.relu3(model.fc1(model.pool(model.relu2(act)).flatten(1))))
            else:
                o = model.fc2(model.relu3(act))
            gr, = torch.autograd.grad(o[rows, target].sum(), act)
        assert torch.allclose(out[f"layer_gxa_{name}"], act.detach() * gr, atol=1e-6), name

    # Layer IG: delta is Captum's sum(attr) - (f(x) - f(0)), and small
    scale = (f_x - f_0).abs().max().item()
    for name in ["conv2", "fc1"]:
        a, d = out[f"layer_ig_{name}_gl50"], out[f"layer_ig_{name}_gl50_delta"]
        assert torch.allclose(per_ex(a) - (f_x - f_0), d, atol=1e-5), name
        assert d.abs().max() < 0.02 * scale + 1e-3, (name, d)

    # LayerConductance: trapezoid nodes include 0 and 1, so the telescoping
    # sum over the layer approximates f(x) - f(0) (left-Riemann in the layer
    # path); GL nodes exclude the end points, so it does not sum to it.
    for tag in ["gl50", "trap50"]:
        a = out[f"layer_conductance_conv2_{tag}"]
        assert torch.allclose(per_ex(a) - (f_x - f_0), lc_delta[tag], atol=1e-5)
    assert lc_delta["trap50"].abs().max() < 0.05 * scale, lc_delta["trap50"]
    # independent re-computation of the conductance formula (trapezoid)
    alphas = torch.linspace(0, 1, 51).tolist()
    pts = torch.cat([a_ * inp for a_ in alphas])
    acts = layer_out(pts, "conv2").requires_grad_(True)
    with torch.enable_grad():
        o = model.fc2(model.relu3(model.fc1(model.pool(model.relu2(acts)).flatten(1))))
        gr, = torch.autograd.grad(o[torch.arange(204), target.repeat(51)].sum(), acts)
    acts = acts.detach().view(51, 4, 6, 8, 8)
    gr = gr.view(51, 4, 6, 8, 8)
    manual = (gr[:-1] * (acts[1:] - acts[:-1])).sum(0)
    assert torch.allclose(manual, out["layer_conductance_conv2_trap50"], atol=1e-5)

    # NeuronConductance summed over the input ~ LayerConductance of that
    # neuron (both ~ integral of dF/dy_n dy_n along the path); loose check
    # (Captum's trapezoid weights are 1/n on an 1/(n-1) grid, see above).
    assert out["neuron_conductance_conv2_gl50"].abs().max() == 0  # dead channel 2
    assert out["neuron_conductance_conv2_trap50"].abs().max() == 0
    nc_sum = per_ex(out[f"neuron_conductance_conv2_{alt}_trap50"])
    lc_n = out["layer_conductance_conv2_trap50"][:, NEURON_ALT[0], NEURON_ALT[1],
                                                  NEURON_ALT[2]]
    assert (lc_n.abs() > 1e-3).all(), lc_n
    # (ReLU kinks between input and conv2: finite differences vs gradients)
    assert torch.allclose(nc_sum, lc_n, atol=0.2 * lc_n.abs().max().item()), (
        nc_sum, lc_n)

    # Neuron IG completeness (conv2 neuron is a piecewise-linear function of x)
    yn = lambda z: layer_out(z, "conv2")[:, NEURON[0], NEURON[1], NEURON[2]]  # noqa: E731
    nig_gap = per_ex(out["neuron_ig_conv2_gl50"]) - (yn(inp) - yn(zeros))
    print(f"  neuron y_n(x) - y_n(0) = {(yn(inp) - yn(zeros)).tolist()}")
    assert nig_gap.abs().max() < 0.1 * (yn(inp) - yn(zeros)).abs().max() + 1e-3, nig_gap

    # LayerLRP == independent epsilon-LRP from the target logit down
    eps = 1e-9

    def stab(z: torch.Tensor) -> torch.Tensor:
        s = torch.sign(z)
        s[s == 0] = 1
        return z + s * eps

    with torch.no_grad():
        a1 = model.relu1(model.conv1(inp))
        z2 = model.conv2(a1)
        a2 = model.relu2(z2)
        p = model.pool(a2)
        z3 = model.fc1(p.flatten(1))
        a3 = model.relu3(z3)
        z4 = model.fc2(a3)
    r4 = torch.zeros_like(z4)
    r4[rows, target] = z4[rows, target]
    r3 = a3 * ((r4 / stab(z4)) @ model.fc2.weight)        # relevance at fc1 output
    assert torch.allclose(out["layer_lrp_fc1"], r3, atol=1e-5, rtol=1e-4)
    rp = p.flatten(1) * ((r3 / stab(z3)) @ model.fc1.weight)
    a2g = a2.clone().requires_grad_(True)
    with torch.enable_grad():
        pz = model.pool(a2g)
        gr, = torch.autograd.grad(pz, a2g, grad_outputs=rp.view_as(pz) / stab(pz.detach()))
    r2 = a2 * gr                                           # relevance at conv2 output
    assert torch.allclose(out["layer_lrp_conv2"], r2, atol=1e-5, rtol=1e-4)
    for name in ["conv2", "fc1"]:
        assert torch.allclose(lrp_delta[name], f_x - per_ex(out[f"layer_lrp_{name}"]),
                              atol=1e-5)

    # LayerDeepLift (pool rule): complete
    for name in ["conv2", "fc1"]:
        a = out[f"layer_deeplift_{name}_poolrule"]
        assert torch.allclose(per_ex(a) - (f_x - f_0), ldl_delta[name], atol=1e-5)
        assert ldl_delta[name].abs().max() < 1e-4, (name, ldl_delta[name])
    # fc1 layer DeepLift: above fc1 only relu3 -> fc2, so the multiplier is
    # fc2.weight[t] * (relu3(z)-relu3(z'))/(z-z') (Rescale rule)
    z_x, z_0 = layer_out(inp, "fc1"), layer_out(zeros, "fc1")
    dz = z_x - z_0
    ratio = torch.where(dz.abs() > 1e-7, (z_x.relu() - z_0.relu()) / dz,
                        ((z_x + z_0) / 2 > 0).float())
    manual = dz * ratio * model.fc2.weight[target]
    assert torch.allclose(out["layer_deeplift_fc1_poolrule"], manual, atol=1e-5)

    # DeepLiftShap == mean of DeepLift over baselines; complete w.r.t. the mean
    assert torch.allclose(out["deep_lift_shap_poolrule"], dl_each.mean(0), atol=1e-6)
    f_b = torch.stack([fwd_t(dls_baselines[j:j + 1].expand_as(inp)) for j in range(5)])
    assert torch.allclose(per_ex(out["deep_lift_shap_poolrule"]), f_x - f_b.mean(0),
                          atol=1e-4)

    # KernelShap / Lime == independent weighted least squares (float64)
    gm = ks_mask[0, 0]

    def group_values(attr: torch.Tensor) -> torch.Tensor:
        # attributions are constant within a group; return (B, 8)
        gv = torch.stack([attr[:, 0][:, gm == gi][:, 0] for gi in range(N_GROUPS)], 1)
        for gi in range(N_GROUPS):
            blk = attr[:, 0][:, gm == gi]
            assert torch.equal(blk, blk[:, :1].expand_as(blk))
        return gv

    def perturbed(c: int) -> torch.Tensor:
        keep = torch.tensor([(c >> gi) & 1 for gi in range(N_GROUPS)])[gm].float()
        return inp * keep

    def wls(xs: np.ndarray, ys: np.ndarray, ws: np.ndarray) -> np.ndarray:
        xa = np.concatenate([xs, np.ones((xs.shape[0], 1))], 1)
        sw = np.sqrt(ws)[:, None]
        coef, *_ = np.linalg.lstsq(xa * sw, ys * sw[:, 0], rcond=None)
        return coef[:-1]

    for key, coal, kind in [("kernel_shap_fixed", ks_coalitions, "ks"),
                            ("lime_fixed", lime_coalitions, "lime")]:
        xs = np.array([[(c >> gi) & 1 for gi in range(N_GROUPS)] for c in coal], float)
        ys = torch.stack([fwd_t(perturbed(c)) for c in coal]).double().numpy()  # (S,B)
        got = group_values(out[key]).double().numpy()
        for b in range(4):
            if kind == "ks":
                ws = np.array([1e6 if c in (0, full) else 1.0 for c in coal])
            else:
                xb = inp[b].flatten().double()
                ws = []
                for c in coal:
                    pb = perturbed(c)[b].flatten().double()
                    nrm = max(xb.norm().item(), 1e-8) * max(pb.norm().item(), 1e-8)
                    d = 1.0 - (xb @ pb).item() / nrm
                    ws.append(np.exp(-d * d / 2.0))
                ws = np.array(ws)
            ref = wls(xs, ys[:, b], ws)
            err = np.abs(ref - got[b]).max()
            print(f"  {key}[{b}]: max |captum - float64 WLS| = {err:.2e}")
            assert err < 2e-3 * max(1.0, np.abs(ref).max()), (key, b, ref, got[b])
        if kind == "ks":
            eff = got.sum(1) - (f_x - f_0).double().numpy()
            print(f"  kernel_shap efficiency gap: {eff}")
            assert np.abs(eff).max() < 1e-3, eff

    meta = {
        "torch": torch.__version__,
        "captum": captum.__version__,
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "python": sys.version.split()[0],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "generator": "scripts/golden/layer_captum.py",
        "source": "weights/input/target from crates/core/tests/data/captum_cnn.safetensors",
        "neuron": "conv2 output (2,3,4); neuron_alt (0,1,6) for conductance",
        "seeds": f"ks torch.manual_seed({KS_SEED}); lime Generator({LIME_SEED}); "
                 f"dls_baselines Generator({DLS_SEED})",
    }
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    save_file(out, OUT_PATH, metadata=meta)
    print(f"wrote {OUT_PATH} ({os.path.getsize(OUT_PATH)} bytes)")
    for k, v in out.items():
        print(f"  {k:34s} {str(v.dtype):14s} {tuple(v.shape)}")
    print(f"  meta: {meta}")
    print(f"  layer_ig deltas: conv2 {out['layer_ig_conv2_gl50_delta'].tolist()}"
          f" fc1 {out['layer_ig_fc1_gl50_delta'].tolist()}")
    print(f"  layer_conductance deltas: gl50 {lc_delta['gl50'].tolist()}"
          f" trap50 {lc_delta['trap50'].tolist()}")
    print(f"  layer_deeplift deltas: conv2 {ldl_delta['conv2'].tolist()}"
          f" fc1 {ldl_delta['fc1'].tolist()}")
    print(f"  deep_lift_shap delta: {dls_d.tolist()}")
    print(f"  neuron IG gap: {nig_gap.tolist()}; NC-sum vs LC(neuron): "
          f"{nc_sum.tolist()} vs {lc_n.tolist()}")
    print(f"  ks_coalitions: {ks_coalitions}")


if __name__ == "__main__":
    main()
