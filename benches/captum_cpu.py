"""Captum / PyTorch CPU side of the candle-explain speed comparison.

Times attribution methods on an MNIST-sized CNN with random (seeded) weights:

    conv(1->32, 3x3) ReLU conv(32->64, 3x3) ReLU maxpool2 flatten
    fc(9216->128) ReLU fc(128->10)          input (32, 1, 28, 28), eval mode

Methods (names accepted by --methods):
    saliency      Saliency(model).attribute(x, target=t)
    ig50          IntegratedGradients(model).attribute(x, baselines=0, target=t,
                  n_steps=50)  (default method gausslegendre, whole 32*50 batch
                  at once, internal_batch_size=None)
    deeplift      DeepLift(model).attribute(x, baselines=0, target=t)
    smoothgrad20  NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad",
                  nt_samples=20, stdevs=0.15, target=t, abs=False)
                  (NoiseTunnel forwards unknown kwargs such as abs to
                  Saliency.attribute, so this is the signed gradient; all 20
                  noisy copies go through in one 640-example batch)
    raw_fwd_bwd   torch.autograd.grad(out.gather(1, t).sum(), x) on a batch of
                  32*50 = 1600 inputs: the bare cost of IG's m=50 passes

Each method: one warm-up call, then the median of --reps timed calls
(time.perf_counter); the whole default run takes ~30 s on 2 cores.  Model
parameters have requires_grad=False, so only input gradients are computed.
Prints one JSON object:

    {"torch": ..., "captum": ..., "threads": N, "batch": 32,
     "results": {name: {"median_s": ..., "explanations_per_s": 32/median,
                        "reps": ...}}}

Run (repo root):
    /work/venv/bin/python benches/captum_cpu.py [--threads 2] [--reps 5]
        [--methods saliency,ig50,deeplift,smoothgrad20,raw_fwd_bwd]
"""

import argparse
import json
import platform
import statistics
import time
import warnings

import torch
import torch.nn as nn

import captum
from captum.attr import DeepLift, IntegratedGradients, NoiseTunnel, Saliency

BATCH = 32
IG_STEPS = 50
ALL_METHODS = ["saliency", "ig50", "deeplift", "smoothgrad20", "raw_fwd_bwd"]


class MnistCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(9216, 128)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        x = self.pool(x).flatten(1)
        x = self.relu3(self.fc1(x))
        return self.fc2(x)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timeit(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--methods", default=",".join(ALL_METHODS))
    args = ap.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in ALL_METHODS:
            ap.error(f"unknown method {m!r}; choose from {ALL_METHODS}")

    warnings.filterwarnings("ignore")  # Captum's "required_grads set" / hook notices
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MnistCnn().eval()
    for p in model.parameters():
        p.requires_grad_(False)  # only input gradients are needed
    x = torch.rand(BATCH, 1, 28, 28)
    t = torch.randint(0, 10, (BATCH,))
    x_big = torch.rand(BATCH * IG_STEPS, 1, 28, 28)
    t_big = t.repeat(IG_STEPS)

    sal = Saliency(model)
    ig = IntegratedGradients(model)
    dl = DeepLift(model)
    nt = NoiseTunnel(Saliency(model))

    def raw_fwd_bwd():
        xb = x_big.clone().requires_grad_(True)
        out = model(xb)
        (g,) = torch.autograd.grad(out.gather(1, t_big[:, None]).sum(), xb)
        return g

    fns = {
        "saliency": lambda: sal.attribute(x, target=t),
        "ig50": lambda: ig.attribute(
            x, baselines=0, target=t, n_steps=IG_STEPS, internal_batch_size=None
        ),
        "deeplift": lambda: dl.attribute(x, baselines=0, target=t),
        "smoothgrad20": lambda: nt.attribute(
            x, nt_type="smoothgrad", nt_samples=20, stdevs=0.15, target=t, abs=False
        ),
        "raw_fwd_bwd": raw_fwd_bwd,
    }

    results = {}
    for m in methods:
        reps = args.reps
        med = timeit(fns[m], reps)
        results[m] = {
            "median_s": med,
            "explanations_per_s": BATCH / med,
            "reps": reps,
        }

    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "captum": captum.__version__,
                "threads": args.threads,
                "batch": BATCH,
                "cpu": cpu_name(),
                "results": results,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
