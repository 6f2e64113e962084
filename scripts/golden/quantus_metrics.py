"""Reference values from Quantus for candle-explain's PixelFlipping and SensitivityN.

Produces
    crates/metrics/tests/data/quantus_reference.safetensors

for `crates/metrics/tests/quantus.rs`: the shipped digits CNN
(weights/digits_cnn.safetensors, architecture restated in
scripts/convert_digits_cnn.py, imported from there), 8 real digits from
weights/data/mnist_5k.csv.gz (the first row of each class 0..7, normalised
(x/255 - 0.1307)/0.3081 as `DigitsCnn::normalize` does), their labels,
Gradient x Input attributions for the label (Captum InputXGradient), and what
Quantus computes from them.

Run from the repository root with the project's Python venv:

    /work/venv/bin/python scripts/golden/quantus_metrics.py

Generated with quantus 0.6.0, torch 2.15 (CPU), captum 0.9.0, numpy 2.4,
scipy 1.17 (the exact versions are written into the file's metadata).  Takes
about a minute on two cores.  Everything is float32 on CPU; the metrics'
randomness is numpy's global RNG, seeded explicitly before every call.

Quantus settings (every call): abs=False, normalise=False (raw signed
attributions are ranked and summed), softmax=False (the raw target logit; the
model has no Softmax module, so Quantus uses it unchanged), perturb_baseline=0.0
(removed features are set to exactly 0.0 in the normalised input, i.e.
`Baseline::Zero`), channel_first=True, batch_size=8 (all examples in one batch,
which matters for SensitivityN, see below).

What the Quantus 0.6.0 metrics compute (read from its source), and how the
Rust test lines up with them:

* PixelFlipping(features_in_step=28): features ranked by np.argsort(-a)
  (signed, descending), removed cumulatively 28 at a time; the curve is the
  target logit after each of the ceil(784/28) = 28 steps.  There is no point
  for the unperturbed input.  Ours with steps = 28 has 29 points; its points
  1..=28 remove exactly 28k features and coincide with Quantus's.
  np.argsort is not stable, ours breaks ties by index: the script asserts that
  no two attributions of an example are equal, so ties cannot matter.

* SensitivityN(features_in_step=28, n_max_percentage=0.8) is NOT the random
  subset test of Ancona et al. (2018).  Quantus removes the top-ranked
  features cumulatively, 28 per step, exactly as in PixelFlipping, and records
  per example and step j
      pred_delta[e, j] = S(x_e) - S(x_e with the top 28(j+1) features at 0)
      att_sum[e, j]    = sum of the attributions of the j-th block of 28 only
  (the cumulative drop is paired with one block's attribution sum), then
  returns, for j < int(0.8*784 // 28) = 22, the Pearson correlation ACROSS
  THE EXAMPLES of pred_delta[:, j] and att_sum[:, j].  It is deterministic
  (no subsets are sampled), and in 0.6.0 it keeps only the first batch's
  examples.  Stored as `sn_quantus`; the Rust test rebuilds it exactly from our
  PixelFlipping curve, because our SensitivityN computes a different quantity.

* FaithfulnessCorrelation(nr_runs, subset_size=n) (Bhatt et al. 2020) is what
  Ancona's Sensitivity-n is, for one n: per example, nr_runs subsets of n
  features drawn uniformly (np.random.choice, no replacement), Pearson
  correlation over the subsets between the subset's attribution sum and
  S(x) - S(x with the subset at 0).  This is what our SensitivityN computes
  per example and n (`per_example[e][j]`).  Stored for n in FC_NS with
  nr_runs = FC_RUNS (`fc_r`), plus the sampling spread that the Rust side's
  estimate with RUST_SUBSETS subsets should have: the standard deviation of
  atanh(r) over FC_REPEATS reruns of Quantus with nr_runs = RUST_SUBSETS and
  different seeds (`fc_z_sd`).  It is measured, not taken from Fisher's
  1/sqrt(M-3): at n = 1 the spread is 2-3x that, because a few pixels
  dominate.

Tensors written (f32 unless noted):
    input         (8,1,28,28)  normalised digits
    label         (8,)   i64
    attribution   (8,1,28,28)  Gradient x Input for the label
    logit         (8,)         target logit of the unperturbed input
    pf_features_in_step ()  i64  28
    pf_quantus    (8,28)       Quantus PixelFlipping curves
    sn_features_in_step ()  i64  28
    sn_removed    (22,)  i64   28(j+1), features removed at Quantus SensitivityN step j
    sn_quantus    (22,)        Quantus SensitivityN (correlation across examples per step)
    fc_n          (5,)   i64   subset sizes n
    fc_runs       ()     i64   FC_RUNS
    fc_r          (8,5)        Quantus FaithfulnessCorrelation, per example and n
    fc_rust_subsets ()   i64   RUST_SUBSETS
    fc_z_sd       (8,5)        sd of atanh(r) at RUST_SUBSETS subsets (FC_REPEATS reruns)
    perturb_baseline ()        0.0
"""

import datetime
import os
import sys
import warnings

import numpy as np
import scipy
import torch
from safetensors.torch import load_file, save_file

import captum
import quantus
from captum.attr import InputXGradient

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from convert_digits_cnn import DigitsCnn, load_csv, normalise, reference_rows  # noqa: E402

OUT = "crates/metrics/tests/data/quantus_reference.safetensors"
N_EX = 8
FEATURES_IN_STEP = 28  # 784 / 28 = 28 steps, no remainder
N_MAX_PERCENTAGE = 0.8
BASELINE = 0.0
FC_NS = [1, 5, 25, 125, 627]  # SensitivityN::log_grid(784, 5, 0.8)
FC_RUNS = 1000
RUST_SUBSETS = 200
FC_REPEATS = 20
SEED = 2024


def common_kwargs():
    return dict(abs=False, normalise=False, perturb_baseline=BASELINE, disable_warnings=True)


def call_kwargs(model, x, y, a):
    return dict(model=model, x_batch=x, y_batch=y, a_batch=a, softmax=False, channel_first=True, batch_size=N_EX, device="cpu")


def faithfulness_correlation(model, x, y, a, n, runs, seed):
    np.random.seed(seed)
    fc = quantus.FaithfulnessCorrelation(nr_runs=runs, subset_size=n, return_aggregate=False, **common_kwargs())
    return np.asarray(fc(**call_kwargs(model, x, y, a)), dtype=np.float64)


def main():
    if not os.path.exists("weights/digits_cnn.safetensors"):
        sys.exit("run from the repository root")
    warnings.filterwarnings("ignore")
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)

    model = DigitsCnn()
    model.load_state_dict(load_file("weights/digits_cnn.safetensors"), strict=True)
    model.eval()

    pixels, labels = load_csv("weights/data/mnist_5k.csv.gz")
    rows = reference_rows(labels, N_EX)
    x_t = torch.from_numpy(normalise(pixels[rows]))
    y_t = torch.from_numpy(labels[rows])
    a_t = InputXGradient(model).attribute(x_t.clone().requires_grad_(True), target=y_t).detach()
    x, y, a = x_t.numpy(), y_t.numpy(), a_t.numpy()
    with torch.no_grad():
        logit = model(x_t)[torch.arange(N_EX), y_t].numpy()

    # No ties: np.argsort (unstable) and our index tie-break give the same order.
    flat = a.reshape(N_EX, -1)
    n_feat = flat.shape[1]
    assert all(len(np.unique(r)) == n_feat for r in flat), "tied attributions"
    order = np.argsort(-flat, axis=1, kind="stable")

    # --- PixelFlipping -------------------------------------------------------
    pf = quantus.PixelFlipping(features_in_step=FEATURES_IN_STEP, **common_kwargs())
    pf_q = np.asarray(pf(**call_kwargs(model, x, y, a)), dtype=np.float32)
    steps = n_feat // FEATURES_IN_STEP
    assert pf_q.shape == (N_EX, steps), pf_q.shape
    # Self-check of our reading: delete the top 28k (k = 1..steps) at once.
    xs = []
    for k in range(1, steps + 1):
        xk = x.reshape(N_EX, -1).copy()
        np.put_along_axis(xk, order[:, : k * FEATURES_IN_STEP], BASELINE, axis=1)
        xs.append(xk.reshape(x.shape))
    with torch.no_grad():
        own = model(torch.from_numpy(np.concatenate(xs))).numpy().reshape(steps, N_EX, -1)
    own = own[:, np.arange(N_EX), y].T
    assert np.abs(own - pf_q).max() < 1e-4, np.abs(own - pf_q).max()

    # --- SensitivityN (Quantus's definition) ---------------------------------
    sn = quantus.SensitivityN(
        features_in_step=FEATURES_IN_STEP, n_max_percentage=N_MAX_PERCENTAGE, return_aggregate=False, **common_kwargs()
    )
    sn_q = np.asarray(sn(**call_kwargs(model, x, y, a)), dtype=np.float64)
    n_steps = int(N_MAX_PERCENTAGE * n_feat // FEATURES_IN_STEP)
    assert sn_q.shape == (n_steps,), sn_q.shape
    # Self-check: cumulative drop vs the j-th block's attribution sum, correlated across examples.
    blocks = np.take_along_axis(flat, order, axis=1).reshape(N_EX, steps, FEATURES_IN_STEP).sum(2)
    drops = logit[:, None] - pf_q
    own = np.array([scipy.stats.pearsonr(drops[:, j], blocks[:, j])[0] for j in range(n_steps)])
    assert np.abs(own - sn_q).max() < 1e-4, np.abs(own - sn_q).max()

    # --- FaithfulnessCorrelation = Ancona's Sensitivity-n per n --------------
    fc_r = np.stack([faithfulness_correlation(model, x, y, a, n, FC_RUNS, SEED + j) for j, n in enumerate(FC_NS)], 1)
    reps = np.stack(
        [
            np.stack([faithfulness_correlation(model, x, y, a, n, RUST_SUBSETS, 10_000 + 100 * r + j) for j, n in enumerate(FC_NS)], 1)
            for r in range(FC_REPEATS)
        ]
    )
    fc_z_sd = np.arctanh(reps).std(0, ddof=1)

    i64 = lambda v: torch.tensor(v, dtype=torch.int64)  # noqa: E731
    f32 = lambda v: torch.tensor(np.asarray(v), dtype=torch.float32)  # noqa: E731
    out = {
        "input": x_t.contiguous(),
        "label": y_t.to(torch.int64).contiguous(),
        "attribution": a_t.contiguous(),
        "logit": f32(logit),
        "pf_features_in_step": i64(FEATURES_IN_STEP),
        "pf_quantus": f32(pf_q),
        "sn_features_in_step": i64(FEATURES_IN_STEP),
        "sn_removed": i64([FEATURES_IN_STEP * (j + 1) for j in range(n_steps)]),
        "sn_quantus": f32(sn_q),
        "fc_n": i64(FC_NS),
        "fc_runs": i64(FC_RUNS),
        "fc_r": f32(fc_r),
        "fc_rust_subsets": i64(RUST_SUBSETS),
        "fc_z_sd": f32(fc_z_sd),
        "perturb_baseline": f32(BASELINE),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    # One metadata key (several would be written in a random order).
    save_file(out, OUT, metadata={
        "info": f"quantus {quantus.__version__}, torch {torch.__version__}, captum {captum.__version__}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}; {datetime.date.today()}; "
        f"mnist_5k.csv.gz rows (0-based) {','.join(map(str, rows))}; Gradient x Input; "
        f"abs=False normalise=False softmax=False perturb_baseline={BASELINE}; "
        f"PixelFlipping/SensitivityN features_in_step={FEATURES_IN_STEP}, n_max_percentage={N_MAX_PERCENTAGE}; "
        f"FaithfulnessCorrelation nr_runs={FC_RUNS} subset_size in {FC_NS}, np.random.seed({SEED}+j) for the j-th n; "
        f"fc_z_sd from {FC_REPEATS} reruns with nr_runs={RUST_SUBSETS}",
    })
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")
    print("rows", rows, "labels", y.tolist())
    print("logit", np.round(logit, 3).tolist())
    print("sn_quantus", np.round(sn_q, 4).tolist())
    print("fc mean r per n", dict(zip(FC_NS, np.round(fc_r.mean(0), 4).tolist())))
    print("fc z sd (mean over examples) per n", dict(zip(FC_NS, np.round(fc_z_sd.mean(0), 4).tolist())))


if __name__ == "__main__":
    main()
