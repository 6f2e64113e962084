"""Golden Guided IG reference values from PAIR's `saliency` package.

What
    crates/core/tests/data/guided_ig_pair.safetensors, holding Guided
    Integrated Gradients (Kapishnikov et al., CVPR 2021) attributions computed
    by PAIR's reference implementation, `saliency.core.GuidedIG`
    (saliency 0.2.1 from PyPI, which calls `guided_ig_impl`).

How
    Run from the repository root with the project's Python venv:

        /work/venv/bin/python scripts/golden/guided_ig_pair.py

    (needs torch, numpy, safetensors and `pip install saliency==0.2.1`; only
    `saliency.core` is imported, which pulls in no TensorFlow).  The file's
    only metadata key is `info` (versions, no date), so re-running with the
    same versions gives identical bytes.

    NumPy >= 2.4 removed np.quantile's `interpolation=` keyword (deprecated
    since 1.22 and renamed `method=`), which saliency 0.2.1 still passes.  The
    script wraps np.quantile in-process to forward `interpolation=` as
    `method=`; the semantics of 'lower' are the same under both names, so the
    reference algorithm is unchanged.

Model
    The weights conv1.*, conv2.*, fc1.*, fc2.*, `input` (4,1,10,10) and
    `target` (4,) of crates/core/tests/data/captum_cnn.safetensors, run in
    float64 on CPU:
        conv1 Conv2d(1,4,3) -> ReLU -> conv2 Conv2d(4,6,3,padding=1) -> ReLU
        -> MaxPool2d(2) -> flatten -> Linear(96,16) -> ReLU -> Linear(16,3)
    Each example i is explained separately: x = input[i] as a (1,10,10)
    float64 array, zero baseline; call_model_function returns the gradient of
    logit[target[i]] w.r.t. the input (torch.autograd.grad).

Contents (float32)
    gig_s20        (4,1,10,10)  x_steps=20, fraction=0.25, max_dist=0.02
    gig_s50_f10    (4,1,10,10)  x_steps=50, fraction=0.1,  max_dist=0.1
    gig_s10_d1     (4,1,10,10)  x_steps=10, fraction=0.25, max_dist=1.0
    <name>_sum     (4,)         per-example attribution sums (summed in f64)
    logits_zero    (4,)         target logit at the zero baseline
    logits         (4,)         target logit at the input
    The script prints sum - (f(x) - f(0)) per example; it is only loosely
    small (a 10-50 step Riemann sum along the path), so nothing tight is
    asserted.  It does not vanish with more steps either: one step may move a
    single feature by up to 2 * max_dist of its range (x_min -> x_max) on a
    gradient taken before the move (with x_steps=2000, max_dist=0.02 the
    deltas are still ~0.005-0.02 here, while max_dist=0, i.e. plain IG, gives
    <2e-4).  When generated, perturbing the gradients by 1e-6 relative noise
    changed no attribution by more than 1e-7 (no fragile quantile ties), so
    float32 reimplementations should match to roughly 1e-5.

Notes: PAIR's algorithm, as a reimplementation must reproduce it
    All arithmetic is float64.  N = number of features, L1 = sum |x_in - x_bl|.
    If L1 == 0 the result is all zeros.  x starts at the baseline, attr at 0.
    For step = 0 .. steps-1:
      * g = grad(x) once per step (the gradient at x *before* the step); all
        attribution increments of this step use g.  A working copy g' of g is
        what gets +inf marks; marks do not carry over to the next step.
      * alpha = (step+1)/steps; alpha_min = max(alpha - max_dist, 0);
        alpha_max = min(alpha + max_dist, 1); x_min / x_max =
        x_bl + (x_in - x_bl) * alpha_min / alpha_max (per feature);
        l1_target = L1 * (1 - (step+1)/steps).
      * gamma = +inf; while gamma > 1:
          1. x_old = copy of x.
          2. a = (x - x_bl) / (x_in - x_bl) per feature; where x_in == x_bl
             a is NaN and is replaced by alpha_max (so such features are never
             pulled to x_min; they also sit at x_max == x_bl, see 5).
          3. Features with a < alpha_min are set to x_min (features that fell
             behind the window are dragged up to its lower edge).
          4. l1_current = sum |x - x_in|.  If
             math.isclose(l1_target, l1_current, rel_tol=1e-9, abs_tol=1e-9)
             (EPSILON = 1e-9, i.e. |d| <= max(1e-9 * max(|a|,|b|), 1e-9)):
             attr += (x - x_old) * g and leave the loop (this includes the
             move made by the drag in 3).
          5. g'[x == x_max] = +inf (exact float equality; features already at
             the window's upper edge, including those with x_in == x_bl).
          6. threshold = np.quantile(|g'|, fraction, method 'lower') over ALL
             N features, +inf ones included: the sorted value at index
             floor((N-1) * fraction).  Selected set
             S = (|g'| <= threshold) & (g' != +inf)   (ties are all selected;
             if threshold is +inf every finite feature is selected).
          7. l1_s = sum over S of |x - x_max|;  gamma = (l1_current -
             l1_target) / l1_s if l1_s > 0 else +inf.
          8. If gamma > 1: x[S] = x_max[S] (move fully to the upper edge).
             Else: x[S] = x[S] + (x_max[S] - x[S]) * gamma (asserts gamma > 0).
          9. attr += (x - x_old) * g; loop again only while gamma > 1 (a
             partial move in 8 ends the step without re-checking 4).
    The result is attr (same shape as the input); no multiplication by
    (x_in - x_bl) afterwards, it is already a path integral.
"""

import os

import numpy as np
import torch
import torch.nn as nn
from safetensors.numpy import load_file
from safetensors.numpy import save_file

# Compatibility shim, see module docstring: forward `interpolation=` to
# `method=` (numpy >= 2.4 dropped the old keyword).
_np_quantile = np.quantile


def _quantile_compat(a, q, *args, interpolation=None, **kwargs):
    if interpolation is not None:
        kwargs["method"] = interpolation
    return _np_quantile(a, q, *args, **kwargs)


np.quantile = _quantile_compat

import saliency  # noqa: E402  (only for the version string)
import saliency.core as saliency_core  # noqa: E402
from saliency.core.base import INPUT_OUTPUT_GRADIENTS  # noqa: E402

IN_PATH = os.path.join("crates", "core", "tests", "data", "captum_cnn.safetensors")
OUT_PATH = os.path.join("crates", "core", "tests", "data", "guided_ig_pair.safetensors")

SETTINGS = [
    ("gig_s20", dict(x_steps=20, fraction=0.25, max_dist=0.02)),
    ("gig_s50_f10", dict(x_steps=50, fraction=0.1, max_dist=0.1)),
    ("gig_s10_d1", dict(x_steps=10, fraction=0.25, max_dist=1.0)),
]


class SmallCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(96, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = self.pool(x).flatten(1)
        x = torch.relu(self.fc1(x))
        return self.fc2(x)


def saliency_version() -> str:
    v = getattr(saliency, "__version__", None)
    if v is None:
        from importlib.metadata import version

        v = version("saliency")
    return v


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    data = load_file(IN_PATH)
    model = SmallCnn().double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(data[name].astype(np.float64)))
    for p in model.parameters():
        p.requires_grad_(False)

    inputs = data["input"].astype(np.float64)  # (4,1,10,10)
    targets = data["target"].astype(np.int64)  # (4,)
    n = inputs.shape[0]

    def logit(x: np.ndarray, t: int) -> float:
        with torch.no_grad():
            return float(model(torch.from_numpy(x[None]))[0, t])

    def make_call_model_function(t: int):
        def call_model_function(x_batch, call_model_args=None, expected_keys=None):
            assert expected_keys == [INPUT_OUTPUT_GRADIENTS], expected_keys
            xb = torch.from_numpy(np.asarray(x_batch, dtype=np.float64)).requires_grad_(True)
            out = model(xb)[:, t].sum()
            (grad,) = torch.autograd.grad(out, xb)
            return {INPUT_OUTPUT_GRADIENTS: grad.numpy()}

        return call_model_function

    logits = np.array([logit(inputs[i], int(targets[i])) for i in range(n)])
    logits_zero = np.array(
        [logit(np.zeros_like(inputs[i]), int(targets[i])) for i in range(n)]
    )
    delta_f = logits - logits_zero

    gig = saliency_core.GuidedIG()
    out = {
        "logits": logits.astype(np.float32),
        "logits_zero": logits_zero.astype(np.float32),
    }
    print(f"saliency {saliency_version()}, torch {torch.__version__}, numpy {np.__version__}")
    print("f(x) - f(0):", np.array2string(delta_f, precision=6))
    for name, kw in SETTINGS:
        attrs = []
        for i in range(n):
            a = gig.GetMask(
                inputs[i],  # (1,10,10) float64
                make_call_model_function(int(targets[i])),
                x_baseline=np.zeros_like(inputs[i]),
                **kw,
            )
            assert a.shape == inputs[i].shape and a.dtype == np.float64
            assert np.all(np.isfinite(a))
            attrs.append(a)
        attrs = np.stack(attrs)  # (4,1,10,10)
        sums = attrs.reshape(n, -1).sum(axis=1)
        out[name] = attrs.astype(np.float32)
        out[f"{name}_sum"] = sums.astype(np.float32)
        print(
            f"{name:12s} {kw}\n"
            f"    sum              = {np.array2string(sums, precision=6)}\n"
            f"    sum - (f(x)-f(0)) = {np.array2string(sums - delta_f, precision=6)}"
        )

    info = (
        f"saliency {saliency_version()} (saliency.core.GuidedIG), torch {torch.__version__}, "
        f"numpy {np.__version__}; model and input from captum_cnn.safetensors; "
        "float64 compute, float32 storage; zero baseline; target-logit gradient"
    )
    out = {k: np.ascontiguousarray(v) for k, v in out.items()}
    save_file(out, OUT_PATH, metadata={"info": info})
    print(f"wrote {OUT_PATH}")
    for k, v in out.items():
        print(f"  {k:16s} {str(v.dtype):8s} {tuple(v.shape)}")


if __name__ == "__main__":
    main()
