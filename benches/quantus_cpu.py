"""The Quantus side of the metrics benchmark (`benches/benchmarks/metrics.rs`): the digits CNN
on the same 8 digits (first of each class 0..7) with Gradient × Input attributions, timed for

  * sensitivity_n_5x100: FaithfulnessCorrelation (Ancona's Sensitivity-n for one n) with
    100 random subsets at each of n = 1, 5, 25, 125, 627;
  * deletion_28: PixelFlipping with features_in_step = 28.

Settings as in scripts/golden/quantus_metrics.py (abs=False, normalise=False, softmax=False,
baseline 0.0, batch_size=8). Prints examples per second (median of `--repeats` timed runs
after one warm-up), the unit criterion reports for our side.

Run from the repository root:  /work/venv/bin/python benches/quantus_cpu.py [--threads 2]
"""
import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from convert_digits_cnn import DigitsCnn, load_csv, normalise  # noqa: E402

import quantus  # noqa: E402
from captum.attr import InputXGradient  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=os.cpu_count())
p.add_argument("--repeats", type=int, default=5)
args = p.parse_args()
torch.set_num_threads(args.threads)
warnings.filterwarnings("ignore")

model = DigitsCnn()
model.load_state_dict(load_file("weights/digits_cnn.safetensors"), strict=True)
model.eval()
pixels, labels = load_csv("weights/data/mnist_5k.csv.gz")
rows = [int(np.flatnonzero(labels == c)[0]) for c in range(8)]
x = normalise(pixels[rows])
y = labels[rows]
xt = torch.tensor(x, requires_grad=True)
a = InputXGradient(model).attribute(xt, target=torch.tensor(y)).detach().numpy()
kw = dict(abs=False, normalise=False, perturb_baseline=0.0, disable_warnings=True, return_aggregate=False)
call = dict(model=model, x_batch=x, y_batch=y, a_batch=a, softmax=False, channel_first=True, batch_size=8, device="cpu")


def sensitivity_n():
    for n in [1, 5, 25, 125, 627]:
        quantus.FaithfulnessCorrelation(nr_runs=100, subset_size=n, **kw)(**call)


def deletion():
    quantus.PixelFlipping(features_in_step=28, **kw)(**call)


print(f"quantus {quantus.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}")
for name, f in [("sensitivity_n_5x100", sensitivity_n), ("deletion_28", deletion)]:
    f()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"{name}: {med * 1e3:.1f} ms per batch of 8, {8 / med:.1f} examples/s")
