"""Golden reference values from Captum's layer and neuron methods on the real digits CNN.

Produces
    crates/models/tests/data/captum_digits_layer.safetensors

for the trained MNIST CNN shipped in weights/digits_cnn.safetensors (the
architecture is restated below with PyTorch's module names, see
scripts/convert_digits_cnn.py and crates/models/src/digits_cnn.rs).  Before
anything is computed the script checks that the restated model reproduces
the logits stored in crates/models/tests/data/digits_reference.safetensors
(all 16 rows) and that the reference inputs are the csv digits normalised as
(x/255 - 0.1307)/0.3081.  Safetensors metadata records the python / torch /
captum / numpy versions, the date of generation and the data choices below.

Run from the repository root with the project's Python venv:

    /work/venv/bin/python scripts/golden/digits_layer_captum.py

(needs torch, captum 0.9, numpy, safetensors; generated with torch 2.15.0,
captum 0.9.0, numpy 2.4.6).  float32, CPU, torch.set_num_threads(1),
deterministic algorithms (relaxed only around LayerDeepLift, whose max-pool
rule calls max_unpool2d).  The script asserts a few invariants before
writing, so a written file is self-checked.  It runs in a few seconds.

Model (eval mode; every ReLU a distinct module; input (N,1,28,28)):
    conv_layers.0 Conv2d(1,32,3,pad 1) -> .1 ReLU -> .2 MaxPool2d(2)   28 -> 14
    conv_layers.3 Conv2d(32,64,3,pad 1) -> .4 ReLU -> .5 MaxPool2d(2)  14 -> 7
    conv_layers.6 Conv2d(64,128,3,pad 1) -> .7 ReLU -> .8 MaxPool2d(2) 7 -> 3
    flatten (N,1152) -> fc_layers.0 Linear(1152,256) -> .1 ReLU
    -> fc_layers.2 Linear(256,10)

Keys (float32 unless noted; B = 4 examples; "layer" = the module's *output*,
i.e. conv_layers.3's output (B,64,14,14) is pre-ReLU, fc_layers.0's output
(B,256) is pre-ReLU; all baselines are zeros (in input space), target =
`target`, n_steps = 50, method "gausslegendre"):
    input (B,1,28,28), target (int64 (B,)) = the predicted classes
    lig_conv3_gl50 (B,64,14,14), lig_conv3_gl50_delta (B,)
                             LayerIntegratedGradients(model, conv_layers[3]),
                             return_convergence_delta=True
    lgxa_fc0 (B,256)         LayerGradientXActivation(model, fc_layers[0])
    lcond_conv3_gl50 (B,64,14,14)   LayerConductance(model, conv_layers[3])
    ii_conv3_gl50 (B,64,14,14)      InternalInfluence(model, conv_layers[3])
    neuron (int64 (3,) = [8,3,11])  (channel, row, column) of conv_layers[3]'s
                             output, used by the two neuron methods
    ncond_conv3_gl50 (B,1,28,28)    NeuronConductance(model, conv_layers[3]),
                             neuron_selector=neuron, target=target
    nig_conv3_gl50 (B,1,28,28)      NeuronIntegratedGradients(model,
                             conv_layers[3]), neuron_selector=neuron
    ldl_conv3 (B,64,14,14)   LayerDeepLift(model_poolrule, conv_layers[3]),
                             multiply_by_inputs True (see "pool rule" below)

Captum formulas relied on (captum 0.9.0; x' = 0 the baseline, a_k the alphas,
w_k the step sizes, y(.) conv_layers[3]'s output as a function of the model
input, F the target logit):
  * "gausslegendre": a_k = (1 + t_k) / 2, w_k = v_k / 2 with (t_k, v_k) =
    numpy.polynomial.legendre.leggauss(n) (float64; the path points are
    computed as x' + a_k * (x - x') with a_k a python float, in float32).
    (captum/attr/_utils/approximation_methods.py)
  * LayerIntegratedGradients: IG in the layer's activation space between
    y(x') and y(x): (y(x) - y(x')) * sum_k w_k dF/dy(y(x') + a_k (y(x)-y(x'))).
    delta = sum(attr) - (F(x) - F(x')) (here -0.021, -0.028, 0.006, 0.012
    against F(x) - F(0) ~ 16..31; asserted < 1% of it).  Note y(x') != 0: the layer's
    baseline is conv_layers[3] applied to the zero image's features.
  * LayerGradientXActivation: y(x) * dF/dy(x) at fc_layers[0]'s output.
  * LayerConductance: n_steps + 1 = 51 GL nodes a_0..a_50 (alphas_func(51);
    no step sizes used); input path points p_k = x' + a_k (x - x');
    attr = sum_{k=0}^{49} dF/dy(p_k) * (y(p_{k+1}) - y(p_k)).  The GL nodes
    exclude 0 and 1, so the sum does not telescope to F(x) - F(x').
  * InternalInfluence: sum_k w_k dF/dy(p_k) (input path, 50 points, no
    multiplication by activations).
  * NeuronConductance: (x - x') * sum_k w_k * dF/dy_n(p_k) * dy_n/dx(p_k),
    y_n the selected neuron, 50 points.
  * NeuronIntegratedGradients: plain IG of y_n w.r.t. the input (no target).
  * LayerDeepLift: (y(x) - y(x')) * m, m = DeepLift multiplier of F w.r.t.
    the layer output (gradient with the Rescale rule at conv_layers.4 /
    .7 and fc_layers.1 and Captum's max-pool rule at conv_layers.5 / .8).
    Complete: sum(attr) = F(x) - F(x') (asserted, |delta| < 1e-4).

Data choices:
  * input: rows 0..3 of digits_reference.safetensors' `input` (mnist_5k.csv.gz
    rows 0, 500, 1000, 1500: the first digit of each of the classes 0..3),
    not all 16: four conv_layers[3]-shaped tensors cost 200 KB per example,
    and the file is kept under 2 MB.  The model classifies all four
    correctly (target == label == [0, 1, 2, 3]).
  * neuron (8, 3, 11): chosen as the conv_layers[3] output unit whose
    NeuronConductance is largest for the *weakest* of the four examples
    (a search outside this script over the 200 units with the largest
    min-over-examples |LayerConductance|): per-example max |value| ~ 0.071,
    0.094, 0.028, 0.077 (printed and asserted > 0.01 below); the runner-up
    (57, 1, 10) reaches only 0.013.  Most conv_layers[3] units have tiny
    conductance on these sparse digits, so an arbitrary unit is likely to be
    (near) zero for some example.
  * pool rule: the digits CNN has the ReLU -> MaxPool pattern that
    core_captum.py's SmallCnnPoolRule describes (conv_layers.1 -> .2,
    .4 -> .5, .7 -> .8).  Inside nn.Sequential the ReLU's output tensor *is*
    the pool's input tensor, and Captum's DeepLift tensor hooks on that
    shared tensor fire in registration order: the ReLU's grad_output capture
    runs before the pool's input hook substitutes the max-pool rule's
    multipliers, so the ReLU rescales the *plain* max-pool gradient (routed
    to the argmax of the input window) and the max-pool rule's result is
    discarded; DeepLift is then not complete.  DigitsCnnPoolRule below is
    the same network (same modules, same parameter names, bit-identical
    outputs) whose forward calls every MaxPool2d on `h + 0`, giving the pool
    its own input tensor, so Captum's max-pool rule takes effect and
    LayerDeepLift is complete.  ldl_conv3 is computed on that model (for the
    record the script also prints the delta of LayerDeepLift on the plain
    Sequential model, which is *not* complete: -0.019, -0.004, -0.039,
    -0.027, vs < 2e-6 with the pool rule; the two differ by up to 0.01 per
    element).  The other methods are pure
    gradient methods, for which `+ 0` changes nothing; they use the plain
    model.
  * LayerDeepLift is given the input with requires_grad_(True) (Captum's
    LayerDeepLift leaves that to the caller; its model pre-hook registers a
    tensor hook on the input).
  The safetensors header's metadata order may differ between runs (the
  tensors are bit-identical).
"""

import copy
import datetime
import gzip
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import captum
from captum.attr import (
    InternalInfluence,
    LayerConductance,
    LayerDeepLift,
    LayerGradientXActivation,
    LayerIntegratedGradients,
    NeuronConductance,
    NeuronIntegratedGradients,
)
from captum.attr._utils.approximation_methods import approximation_parameters

WEIGHTS = os.path.join("weights", "digits_cnn.safetensors")
CSV = os.path.join("weights", "data", "mnist_5k.csv.gz")
REF_PATH = os.path.join("crates", "models", "tests", "data", "digits_reference.safetensors")
OUT_PATH = os.path.join("crates", "models", "tests", "data", "captum_digits_layer.safetensors")

MEAN = 0.1307
STD = 0.3081
B = 4  # reference rows 0..B-1
N_STEPS = 50
METHOD = "gausslegendre"
NEURON = (8, 3, 11)  # conv_layers[3] output (channel, row, column); see docstring


class DigitsCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        # Indices inside the Sequentials match the checkpoint's names.
        self.conv_layers = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1),  # 0
            nn.ReLU(),  # 1
            nn.MaxPool2d(kernel_size=2, stride=2),  # 2
            nn.Conv2d(32, 64, kernel_size=3, padding=1),  # 3
            nn.ReLU(),  # 4
            nn.MaxPool2d(kernel_size=2, stride=2),  # 5
            nn.Conv2d(64, 128, kernel_size=3, padding=1),  # 6
            nn.ReLU(),  # 7
            nn.MaxPool2d(kernel_size=2, stride=2),  # 8
        )
        self.fc_layers = nn.Sequential(
            nn.Linear(128 * 3 * 3, 256),  # 0
            nn.ReLU(),  # 1
            nn.Linear(256, 10),  # 2
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_layers(x)
        x = x.reshape(x.shape[0], -1)
        return self.fc_layers(x)


class DigitsCnnPoolRule(DigitsCnn):
    """Same network; every MaxPool2d gets its own input tensor (`h + 0`).

    See the module docstring ("pool rule"): with ReLU -> MaxPool sharing one
    tensor, Captum's DeepLift discards its max-pool rule.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for mod in self.conv_layers:
            h = mod(h + 0) if isinstance(mod, nn.MaxPool2d) else mod(h)
        h = h.reshape(h.shape[0], -1)
        return self.fc_layers(h)


def f32(t: torch.Tensor) -> torch.Tensor:
    assert t.dtype == torch.float32, t.dtype
    return t.detach().contiguous().clone()


def frozen(model: nn.Module, state: dict) -> nn.Module:
    model.load_state_dict(state, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def main() -> None:
    warnings.filterwarnings("ignore", message=".*did not already require gradients.*")
    warnings.filterwarnings("ignore", message=".*hooks and attributes on non-linear.*")
    warnings.filterwarnings("ignore", message=".*Setting backward hooks on ReLU.*")
    warnings.filterwarnings("ignore", message=".*Input Tensor . did not already require.*")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    # --- model; check it against the reference logits -----------------------
    state = load_file(WEIGHTS)
    assert set(state) == {
        f"{p}.{w}" for p in ["conv_layers.0", "conv_layers.3", "conv_layers.6",
                             "fc_layers.0", "fc_layers.2"] for w in ["weight", "bias"]
    }, sorted(state)
    model = frozen(DigitsCnn(), state)
    pool_rule_model = frozen(DigitsCnnPoolRule(), state)

    with safe_open(REF_PATH, "pt") as f:
        ref = {k: f.get_tensor(k) for k in f.keys()}
        ref_info = f.metadata()["info"]
    with torch.no_grad():
        ref_logits = model(ref["input"])
        assert torch.equal(pool_rule_model(ref["input"]), ref_logits)
    logit_err = (ref_logits - ref["logits"]).abs().max().item()
    print(f"  logits vs digits_reference (16 rows): max |diff| = {logit_err:.3e}")
    assert logit_err < 1e-5, logit_err
    assert torch.equal(ref_logits.argmax(1), ref["label"])

    # the reference inputs are the csv rows named in its metadata, normalised
    csv_rows = [int(r) for r in ref_info.split("rows (0-based) ")[1].split(";")[0].split(",")]
    assert len(csv_rows) == 16, csv_rows
    with gzip.open(CSV, "rt") as fh:
        arr = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    pixels = arr[csv_rows, :784].astype(np.float32).reshape(-1, 1, 28, 28)
    assert (arr[csv_rows, 784] == ref["label"].numpy()).all()
    norm = torch.from_numpy(((pixels / np.float32(255.0)) - np.float32(MEAN)) / np.float32(STD))
    assert torch.allclose(norm, ref["input"], atol=1e-6), (norm - ref["input"]).abs().max()

    inp = ref["input"][:B].clone()
    assert inp.dtype == torch.float32 and inp.shape == (B, 1, 28, 28)
    with torch.no_grad():
        logits = model(inp)
    target = logits.argmax(1).to(torch.int64)
    assert torch.equal(target, ref["label"][:B]), (target, ref["label"][:B])
    zeros = torch.zeros_like(inp)
    rows = torch.arange(B)

    def x() -> torch.Tensor:
        # fresh copy per call: Captum toggles requires_grad on its inputs
        return inp.clone()

    def fwd_t(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(z)[rows.repeat(z.shape[0] // B), target.repeat(z.shape[0] // B)]

    f_x = fwd_t(inp)
    f_0 = fwd_t(zeros)
    scale = (f_x - f_0).abs().max().item()

    conv3 = model.conv_layers[3]
    out: dict[str, torch.Tensor] = {"input": f32(inp), "target": target.clone()}

    # --- layer methods ---------------------------------------------------------
    a, d = LayerIntegratedGradients(model, conv3).attribute(
        x(), baselines=zeros, target=target, n_steps=N_STEPS, method=METHOD,
        return_convergence_delta=True)
    out["lig_conv3_gl50"] = f32(a)
    out["lig_conv3_gl50_delta"] = f32(d)
    out["lgxa_fc0"] = f32(
        LayerGradientXActivation(model, model.fc_layers[0]).attribute(x(), target=target))
    a, lcond_delta = LayerConductance(model, conv3).attribute(
        x(), baselines=zeros, target=target, n_steps=N_STEPS, method=METHOD,
        return_convergence_delta=True)
    out["lcond_conv3_gl50"] = f32(a)
    out["ii_conv3_gl50"] = f32(
        InternalInfluence(model, conv3).attribute(
            x(), baselines=zeros, target=target, n_steps=N_STEPS, method=METHOD))

    # --- neuron methods --------------------------------------------------------
    out["neuron"] = torch.tensor(NEURON, dtype=torch.int64)
    out["ncond_conv3_gl50"] = f32(
        NeuronConductance(model, conv3).attribute(
            x(), neuron_selector=NEURON, baselines=zeros, target=target,
            n_steps=N_STEPS, method=METHOD))
    out["nig_conv3_gl50"] = f32(
        NeuronIntegratedGradients(model, conv3).attribute(
            x(), neuron_selector=NEURON, baselines=zeros, n_steps=N_STEPS,
            method=METHOD))

    # --- LayerDeepLift (max-pool rule in effect; plain model for the record) --
    torch.use_deterministic_algorithms(False)
    ldl_delta = {}
    for tag, net in [("poolrule", pool_rule_model), ("plain", model)]:
        m = copy.deepcopy(net)
        a, d = LayerDeepLift(m, m.conv_layers[3]).attribute(
            x().requires_grad_(True), baselines=zeros, target=target,
            return_convergence_delta=True)
        ldl_delta[tag] = d
        if tag == "poolrule":
            out["ldl_conv3"] = f32(a)
        else:
            ldl_plain = a.detach()
    torch.use_deterministic_algorithms(True)

    # --- self checks -------------------------------------------------------------
    for k, v in out.items():
        if v.dtype.is_floating_point:
            assert torch.isfinite(v).all(), k
    shapes = {
        "input": (B, 1, 28, 28), "target": (B,),
        "lig_conv3_gl50": (B, 64, 14, 14), "lig_conv3_gl50_delta": (B,),
        "lgxa_fc0": (B, 256), "lcond_conv3_gl50": (B, 64, 14, 14),
        "ii_conv3_gl50": (B, 64, 14, 14), "neuron": (3,),
        "ncond_conv3_gl50": (B, 1, 28, 28), "nig_conv3_gl50": (B, 1, 28, 28),
        "ldl_conv3": (B, 64, 14, 14),
    }
    assert set(shapes) == set(out), set(shapes) ^ set(out)
    for k, s in shapes.items():
        assert tuple(out[k].shape) == s, (k, out[k].shape, s)
        want = torch.int64 if k in ("target", "neuron") else torch.float32
        assert out[k].dtype == want, (k, out[k].dtype)

    def per_ex(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(t.shape[0], -1).sum(1)

    cl = model.conv_layers

    def lower(z: torch.Tensor) -> torch.Tensor:  # input -> conv_layers[3] output
        return cl[3](cl[2](cl[1](cl[0](z))))

    def upper(y: torch.Tensor) -> torch.Tensor:  # conv_layers[3] output -> logits
        h = cl[8](cl[7](cl[6](cl[5](cl[4](y)))))
        return model.fc_layers(h.reshape(h.shape[0], -1))

    def grad_at_layer(y: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        y = y.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            o = upper(y)
            (g,) = torch.autograd.grad(o[torch.arange(o.shape[0]), tgt].sum(), y)
        return g

    with torch.no_grad():
        y_x, y_0 = lower(inp), lower(zeros)
    step_fn, alpha_fn = approximation_parameters(METHOD)
    ws, als = step_fn(N_STEPS), alpha_fn(N_STEPS)
    t_rep = target.repeat(N_STEPS)

    # Layer IG: Captum's delta, small; == independent layer-space IG
    lig, lig_d = out["lig_conv3_gl50"], out["lig_conv3_gl50_delta"]
    assert torch.allclose(per_ex(lig) - (f_x - f_0), lig_d, atol=1e-4)
    assert lig_d.abs().max() < 0.01 * scale + 1e-3, (lig_d, scale)
    g = grad_at_layer(torch.cat([y_0 + a_ * (y_x - y_0) for a_ in als]), t_rep)
    manual = (y_x - y_0) * sum(w * g[k * B:(k + 1) * B] for k, w in enumerate(ws))
    err_lig = (manual - lig).abs().max().item()
    assert err_lig < 1e-5 * max(1.0, lig.abs().max().item()), err_lig

    # LayerGradientXActivation == activation * autograd gradient (fc_layers[0])
    with torch.no_grad():
        h = cl[8](cl[7](cl[6](cl[5](cl[4](y_x)))))
        z0 = model.fc_layers[0](h.reshape(B, -1))
    zg = z0.clone().requires_grad_(True)
    with torch.enable_grad():
        o = model.fc_layers[2](model.fc_layers[1](zg))
        (gz,) = torch.autograd.grad(o[rows, target].sum(), zg)
    assert torch.allclose(out["lgxa_fc0"], z0 * gz, atol=1e-6), "lgxa"

    # LayerConductance (51 GL nodes, no weights) and InternalInfluence (50 GL
    # nodes, weights) == independent recomputation on the input path
    als51 = alpha_fn(N_STEPS + 1)
    pts = torch.cat([zeros + a_ * (inp - zeros) for a_ in als51])
    with torch.no_grad():
        y_p = lower(pts)
    g = grad_at_layer(y_p, target.repeat(N_STEPS + 1))
    manual = sum(g[k * B:(k + 1) * B] * (y_p[(k + 1) * B:(k + 2) * B] - y_p[k * B:(k + 1) * B])
                 for k in range(N_STEPS))
    err_lc = (manual - out["lcond_conv3_gl50"]).abs().max().item()
    assert err_lc < 1e-5, err_lc
    assert torch.allclose(per_ex(out["lcond_conv3_gl50"]) - (f_x - f_0), lcond_delta,
                          atol=1e-4)
    pts = torch.cat([zeros + a_ * (inp - zeros) for a_ in als])
    with torch.no_grad():
        y_p = lower(pts)
    g = grad_at_layer(y_p, t_rep)
    manual = sum(w * g[k * B:(k + 1) * B] for k, w in enumerate(ws))
    err_ii = (manual - out["ii_conv3_gl50"]).abs().max().item()
    assert err_ii < 1e-5, err_ii

    # Neuron methods: clearly non-zero for every example; NeuronConductance
    # summed over the input ~ the neuron's LayerConductance (loose: ReLU and
    # max-pool kinks below conv_layers[3]); Neuron IG ~ complete.
    c, r, col = NEURON
    nc = out["ncond_conv3_gl50"]
    nc_max = nc.abs().flatten(1).amax(1)
    assert (nc_max > 0.01).all(), nc_max
    nc_sum = per_ex(nc)
    lc_n = out["lcond_conv3_gl50"][:, c, r, col]
    assert torch.allclose(nc_sum, lc_n, atol=0.1 * lc_n.abs().max().item()), (nc_sum, lc_n)
    nig = out["nig_conv3_gl50"]
    nig_max = nig.abs().flatten(1).amax(1)
    assert (nig_max > 0.01).all(), nig_max
    dyn = y_x[:, c, r, col] - y_0[:, c, r, col]
    nig_gap = per_ex(nig) - dyn
    assert nig_gap.abs().max() < 0.05 * dyn.abs().max() + 1e-3, (nig_gap, dyn)

    # LayerDeepLift (pool rule): complete, sum == F(x) - F(0)
    ldl = out["ldl_conv3"]
    ldl_gap = per_ex(ldl) - (f_x - f_0)
    assert torch.allclose(ldl_gap, ldl_delta["poolrule"], atol=1e-4)
    assert ldl_gap.abs().max() < 1e-4, ldl_gap
    # the plain Sequential model loses the max-pool rule (see docstring)
    plain_gap = per_ex(ldl_plain) - (f_x - f_0)
    assert torch.allclose(plain_gap, ldl_delta["plain"], atol=1e-4)

    meta = {
        "torch": torch.__version__,
        "captum": captum.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "generator": "scripts/golden/digits_layer_captum.py",
        "source": f"weights/digits_cnn.safetensors; input = rows 0..{B - 1} of "
                  "crates/models/tests/data/digits_reference.safetensors (mnist_5k.csv.gz "
                  f"rows {','.join(map(str, csv_rows[:B]))}, (x/255 - {MEAN})/{STD})",
        "settings": f"baselines zeros, target = predicted class, n_steps {N_STEPS}, "
                    f"{METHOD}; layer conv_layers.3 output (pre-ReLU), fc_layers.0 output; "
                    f"neuron {NEURON}; ldl_conv3 with MaxPool2d(h + 0) (Captum max-pool rule)",
    }
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    save_file(out, OUT_PATH, metadata=meta)
    size = os.path.getsize(OUT_PATH)
    assert size < 2_000_000, size
    print(f"wrote {OUT_PATH} ({size} bytes)")
    for k, v in out.items():
        print(f"  {k:22s} {str(v.dtype):14s} {tuple(v.shape)}")
    print(f"  meta: {meta}")
    print(f"  target {target.tolist()}; F(x) {f_x.tolist()}; F(0) {f_0.tolist()}")
    print(f"  lig delta {lig_d.tolist()} (max |F(x)-F(0)| {scale:.4f}); "
          f"|captum - manual| {err_lig:.2e}")
    print(f"  lcond: sum - (F(x)-F(0)) {lcond_delta.tolist()}; |captum - manual| {err_lc:.2e}")
    print(f"  ii: |captum - manual| {err_ii:.2e}")
    print(f"  neuron {NEURON}: ncond per-example max |.| {nc_max.tolist()}")
    print(f"    ncond sum {nc_sum.tolist()} vs lcond at neuron {lc_n.tolist()}")
    print(f"    nig per-example max |.| {nig_max.tolist()}; sum - (y_n(x)-y_n(0)) "
          f"{nig_gap.tolist()} (y_n(x)-y_n(0) {dyn.tolist()})")
    print(f"  ldl (pool rule) sum - (F(x)-F(0)) {ldl_gap.tolist()}")
    print(f"  ldl on the plain Sequential model (not stored): delta {plain_gap.tolist()}; "
          f"max |plain - poolrule| {(ldl_plain - ldl).abs().max().item():.3e}")


if __name__ == "__main__":
    main()
