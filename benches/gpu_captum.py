"""PyTorch + Captum side of the GPU throughput comparison (one JSON line per result).

Cases (random weights, torch.manual_seed(0), eval mode, random inputs; only the input
needs a gradient, every parameter has requires_grad=False):

    mnist_cnn  batch 256, x (256, 1, 28, 28) = torch.rand
               conv(1->32,3) ReLU conv(32->64,3) ReLU maxpool2 flatten fc(9216->128) ReLU
               fc(128->10)  (PyTorch's MNIST example net without dropout)
    resnet50   batch 16, x (16, 3, 224, 224) = torch.randn;
               torchvision.models.resnet50(weights=None)
    bert_base  batch 16, seq 128: attribution at the word embeddings; the model takes
               x (16, 128, 768) = 0.02 * torch.randn and computes
               x + pos_emb[0:128] + type_emb[0] -> LayerNorm(eps 1e-12)
               -> 12 x nn.TransformerEncoderLayer(768, 12, 3072, gelu, batch_first,
                  post-norm, dropout 0, eps 1e-12) -> tanh(Linear(768,768)(h[:, 0]))
               -> Linear(768, 2).  No attention mask.  Embedding tables ~ N(0, 0.02).
               torch.backends.mha.set_fastpath_enabled(False) is set, so every forward
               (also Captum's no_grad forwards for the convergence delta) takes the
               ordinary autograd path; the script checks once per case and dtype that
               d logit / d x is finite and nonzero.

Methods (Captum), target = argmax of the f32 model's logits per row, computed once
before timing:

    saliency      Saliency(model).attribute(x, target=t, abs=False)
    ig50          IntegratedGradients(model).attribute(x, baselines=zeros, target=t,
                  n_steps=50, method="gausslegendre", internal_batch_size=--ig-chunk
                  (default None: all 50*B rows in one batch), return_convergence_delta=True)
    smoothgrad20  NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad",
                  nt_samples=20, nt_samples_batch_size=--nt-batch (default 20: all at
                  once), stdevs=0.15*(x.max()-x.min()), target=t, abs=False)

Timing: --warmup untimed calls, then --reps timed calls, each bracketed by
torch.cuda.synchronize() on CUDA; "seconds" is the median.  peak_mib is
torch.cuda.max_memory_allocated() (whole process: weights + inputs + workspace) over the
timed calls, after torch.cuda.reset_peak_memory_stats(); null on CPU.  For ig50,
completeness_rel = max|delta| / max|F(x) - F(baseline)| over the batch, in float32
arithmetic (delta is the one Captum returns, .float()'d; F(x), F(b) are the target logits
of the model in its dtype, subtracted after .float()).  ig_delta_max_abs /
ig_fdiff_max_abs are the two parts.  Note: Captum 0.9 returns IG attributions and delta
in float32 even for a bf16 model (its Gauss-Legendre step weights are a float32 tensor),
but forms F(x) - F(b) inside delta in bf16; completeness_rel_f32sum recomputes
delta = sum(attr) - (F(x) - F(b)) entirely in float32.  A CUDA out-of-memory
error gives a line with "seconds": null and "error": "oom" (retry with --ig-chunk /
--nt-batch) instead of ending the run.

stdout carries only the JSON lines, one per (case, dtype, method):

    {"side": "captum", "case": "bert_base", "batch": 16, "method": "ig50", "dtype": "bf16",
     "tf32": false, "device": "cuda", "seconds": ..., "explanations_per_s": batch/seconds,
     "peak_mib": ..., "completeness_rel": ... (ig50 only, else null), "torch": ...,
     "captum": ..., "gpu": "NVIDIA H100 80GB HBM3" (null on CPU), ...}

progress goes to stderr.  "tf32" is true only on f32 rows run with --tf32 (it has no
effect on bf16).  Without --tf32 both torch.backends.cuda.matmul.allow_tf32 and
torch.backends.cudnn.allow_tf32 are set False (cuDNN's default would be True).

On the GPU machine (PyTorch + CUDA present, no internet, no transformers needed), from
the repository root, with the carried Captum wheel:

    python3 -m pip install --no-deps --user captum-0.9.0-py3-none-any.whl
        # or: pip install --no-deps --target /tmp/pyuser captum-*.whl
        #     and export PYTHONPATH=/tmp/pyuser
    python3 benches/gpu_captum.py --device cuda --dtype both > captum_gpu.jsonl
    python3 benches/gpu_captum.py --device cuda --dtype f32 --tf32 >> captum_gpu.jsonl

(--user puts it in ~/.local, which python3 finds by itself; pip may warn about Captum's
undeclared dependencies.)  Captum's import pulls in matplotlib, mpl_toolkits and tqdm,
which Saliency / IG / NoiseTunnel never use: if they are missing this script serves
inert stand-ins for them (a "[note]" on stderr says so).  numpy is really needed (IG's
gausslegendre nodes), and torchvision for resnet50.  Other flags: --cases mnist_cnn,resnet50,bert_base --methods
saliency,ig50,smoothgrad20 --reps 5 --warmup 2 --ig-chunk N --nt-batch N
--cudnn-benchmark --threads N.  --quick shrinks every batch to 2, BERT's sequence to 16
and ResNet's input to 64x64 and makes the defaults --reps 1 --warmup 0, to test the
script on a CPU (about a minute on 2 cores, mostly IG on BERT and ResNet):

    /work/venv/bin/python benches/gpu_captum.py --device cpu --quick --dtype both

The figures go to benches/README.md (GPU section), next to the Rust binary's lines.
"""

import argparse
import json
import math
import statistics
import sys
import time
import warnings

import torch
import torch.nn as nn



def _stub_missing_captum_deps() -> list:
    """Captum imports matplotlib / mpl_toolkits (visualisation) and tqdm (progress bars)
    when captum.attr is imported, but Saliency / IntegratedGradients / NoiseTunnel never
    call them.  On a machine where the wheel went in with --no-deps and these are absent,
    serve inert stand-in modules (any submodule, any attribute) so the import succeeds.
    numpy is really needed: gausslegendre takes its nodes from numpy.polynomial.legendre."""
    import importlib.abc
    import importlib.machinery
    import importlib.util
    import types

    class _Any:
        def __init__(self, *a, **k):
            pass

        def __call__(self, *a, **k):
            return _Any()

        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return _Any()

        def __getitem__(self, k):
            return _Any()

        def __mro_entries__(self, bases):
            return (object,)

    missing = tuple(p for p in ("matplotlib", "mpl_toolkits", "tqdm")
                    if importlib.util.find_spec(p) is None)
    if not missing:
        return []

    class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in missing:
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec):
            mod = types.ModuleType(spec.name)

            def getattr_(attr):  # dunders stay missing (inspect walks sys.modules)
                if attr.startswith("__"):
                    raise AttributeError(attr)
                return _Any()

            mod.__getattr__ = getattr_
            return mod

        def exec_module(self, module):
            module.__path__ = []

    sys.meta_path.insert(0, _StubFinder())
    return list(missing)


_STUBBED = _stub_missing_captum_deps()

import captum  # noqa: E402
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency  # noqa: E402

ALL_CASES = ["mnist_cnn", "resnet50", "bert_base"]
ALL_METHODS = ["saliency", "ig50", "smoothgrad20"]
IG_STEPS = 50
NT_SAMPLES = 20


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


class MnistCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        x = self.pool(x).flatten(1)
        x = self.relu(self.fc1(x))
        return self.fc2(x)


class BertFromEmbeddings(nn.Module):
    """BERT-base encoder + pooler + 2-way classifier, fed the word embeddings."""

    def __init__(self, hidden=768, layers=12, heads=12, ffn=3072, max_pos=512, classes=2):
        super().__init__()
        self.pos_emb = nn.Embedding(max_pos, hidden)
        self.type_emb = nn.Embedding(2, hidden)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        nn.init.normal_(self.type_emb.weight, std=0.02)
        self.emb_ln = nn.LayerNorm(hidden, eps=1e-12)
        # A plain ModuleList, not nn.TransformerEncoder (whose nested-tensor fast path
        # is another way around autograd).
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model=hidden,
                nhead=heads,
                dim_feedforward=ffn,
                dropout=0.0,
                activation="gelu",
                layer_norm_eps=1e-12,
                batch_first=True,
                norm_first=False,
            )
            for _ in range(layers)
        )
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.shape[1]
        h = x + self.pos_emb.weight[:s] + self.type_emb.weight[0]
        h = self.emb_ln(h)
        for layer in self.layers:
            h = layer(h)
        return self.classifier(torch.tanh(self.pooler(h[:, 0])))


def build_case(name: str, quick: bool):
    """Returns (f32 CPU model, f32 CPU input) for a case; seeded, eval mode."""
    torch.manual_seed(0)
    if name == "mnist_cnn":
        b = 2 if quick else 256
        model = MnistCnn()
        torch.manual_seed(1)
        x = torch.rand(b, 1, 28, 28)
    elif name == "resnet50":
        import torchvision

        b, hw = (2, 64) if quick else (16, 224)
        model = torchvision.models.resnet50(weights=None)
        torch.manual_seed(1)
        x = torch.randn(b, 3, hw, hw)
    elif name == "bert_base":
        b, s = (2, 16) if quick else (16, 128)
        model = BertFromEmbeddings()
        torch.manual_seed(1)
        x = 0.02 * torch.randn(b, s, 768)
    else:
        raise SystemExit(f"unknown case {name!r}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, x


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def check_input_grad(model, x, target, label: str) -> None:
    """One explicit fwd+bwd with grad enabled: the input gradient must be finite, nonzero."""
    xr = x.detach().clone().requires_grad_(True)
    out = model(xr)
    (g,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), xr)
    g = g.float()
    n = g.abs().sum().item()
    log(f"[check] {label}: |d logit/d x|_1 = {n:.4e}, finite = {bool(torch.isfinite(g).all())}")
    if not (math.isfinite(n) and n > 0):
        raise SystemExit(f"{label}: input gradient is zero or not finite ({n})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--dtype", default="both", choices=["f32", "bf16", "both"])
    ap.add_argument("--tf32", action="store_true", help="allow TF32 for f32 matmul/conv")
    ap.add_argument("--cases", default=",".join(ALL_CASES))
    ap.add_argument("--methods", default=",".join(ALL_METHODS))
    ap.add_argument("--reps", type=int, default=None, help="timed calls (default 5; 1 with --quick)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed calls first (default 2; 0 with --quick)")
    ap.add_argument("--ig-chunk", type=int, default=None,
                    help="IG internal_batch_size (rows per pass); default: all 50*B at once")
    ap.add_argument("--nt-batch", type=int, default=NT_SAMPLES,
                    help="NoiseTunnel nt_samples_batch_size (default 20: all at once)")
    ap.add_argument("--cudnn-benchmark", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    ap.add_argument("--quick", action="store_true",
                    help="batch 2, seq 16, resnet 64x64: for testing the script")
    a = ap.parse_args()

    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    for c in cases:
        if c not in ALL_CASES:
            ap.error(f"unknown case {c!r}; choose from {ALL_CASES}")
    for m in methods:
        if m not in ALL_METHODS:
            ap.error(f"unknown method {m!r}; choose from {ALL_METHODS}")
    if a.reps is None:
        a.reps = 1 if a.quick else 5
    if a.warmup is None:
        a.warmup = 0 if a.quick else 2
    if a.reps < 1 or a.warmup < 0:
        ap.error("--reps must be >= 1 and --warmup >= 0")
    dtypes = ["f32", "bf16"] if a.dtype == "both" else [a.dtype]

    warnings.filterwarnings("ignore")  # Captum's "required_grads has been set" notices
    dev = torch.device(a.device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda but torch.cuda.is_available() is False")
        torch.backends.cuda.matmul.allow_tf32 = a.tf32
        torch.backends.cudnn.allow_tf32 = a.tf32  # cuDNN's default is True
        torch.backends.cudnn.benchmark = a.cudnn_benchmark
        gpu = torch.cuda.get_device_name()
    else:
        gpu = None
    if a.threads:
        torch.set_num_threads(a.threads)
    # Never take nn.TransformerEncoderLayer's fused inference path: not under grad
    # (where it is skipped anyway because the input requires grad) nor in Captum's
    # no_grad forwards for the convergence delta, so all forwards share one numeric path.
    if hasattr(torch.backends, "mha"):
        torch.backends.mha.set_fastpath_enabled(False)

    log(f"torch {torch.__version__} captum {captum.__version__} device={dev} gpu={gpu} "
        f"threads={torch.get_num_threads()} tf32={a.tf32} quick={a.quick}")
    if _STUBBED:
        log(f"[note] not installed, stubbed for Captum's import only: {', '.join(_STUBBED)}")

    for case in cases:
        model32, x_cpu = build_case(case, a.quick)
        batch = x_cpu.shape[0]
        model32 = model32.to(dev)
        with torch.no_grad():
            target = model32(x_cpu.to(dev)).argmax(dim=1)
        del model32  # not resident while timing (peak_mib)
        for dname in dtypes:
            dt = torch.float32 if dname == "f32" else torch.bfloat16
            model = build_case(case, a.quick)[0].to(dev, dt)  # same seeded weights
            x = x_cpu.to(dev, dt)
            baseline = torch.zeros_like(x)
            check_input_grad(model, x, target, f"{case}/{dname}")
            stdev = 0.15 * (x.max() - x.min()).item()

            sal = Saliency(model)
            ig = IntegratedGradients(model)
            # Captum draws the SmoothGrad noise in float32 (torch.normal on a float32
            # stdev tensor), so bf16 inputs + noise arrive as float32; cast back to the
            # model's dtype in the forward (a no-op in f32).  Attributions come out f32.
            nt = NoiseTunnel(Saliency(lambda inp: model(inp.to(dt))))
            fns = {
                "saliency": lambda: sal.attribute(x, target=target, abs=False),
                "ig50": lambda: ig.attribute(
                    x, baselines=baseline, target=target, n_steps=IG_STEPS,
                    method="gausslegendre", internal_batch_size=a.ig_chunk,
                    return_convergence_delta=True),
                "smoothgrad20": lambda: nt.attribute(
                    x, nt_type="smoothgrad", nt_samples=NT_SAMPLES,
                    nt_samples_batch_size=a.nt_batch, stdevs=stdev, target=target,
                    abs=False),
            }

            for m in methods:
                fn = fns[m]
                rec = {
                    "side": "captum", "case": case, "batch": batch, "method": m,
                    "dtype": dname, "tf32": bool(a.tf32 and dname == "f32"),
                    "device": dev.type, "seconds": None, "explanations_per_s": None,
                    "peak_mib": None, "completeness_rel": None,
                    "torch": torch.__version__, "captum": captum.__version__, "gpu": gpu,
                    "reps": a.reps, "warmup": a.warmup,
                    "ig_chunk": a.ig_chunk if m == "ig50" else None,
                    "nt_batch": a.nt_batch if m == "smoothgrad20" else None,
                    "ig_delta_max_abs": None, "ig_fdiff_max_abs": None,
                    "completeness_rel_f32sum": None, "error": None,
                }
                log(f"[run] {case} {dname} {m} batch={batch} ...")
                try:
                    for _ in range(a.warmup):
                        res = fn()
                    sync(dev)
                    if dev.type == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    times = []
                    for _ in range(a.reps):
                        sync(dev)
                        t0 = time.perf_counter()
                        res = fn()
                        sync(dev)
                        times.append(time.perf_counter() - t0)
                except torch.cuda.OutOfMemoryError as e:  # CUDA OOM: report and go on
                    res = None
                    rec["error"] = "oom"
                    log(f"[oom] {case} {dname} {m}: {str(e).splitlines()[0]}")
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                if res is not None:
                    sec = statistics.median(times)
                    rec["seconds"] = sec
                    rec["explanations_per_s"] = batch / sec
                    if dev.type == "cuda":
                        rec["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
                    attr = res[0] if m == "ig50" else res
                    if not bool(torch.isfinite(attr).all()):
                        log(f"[warn] {case} {dname} {m}: non-finite attributions")
                    if m == "ig50":
                        delta = res[1].float()
                        with torch.no_grad():
                            fx = model(x).gather(1, target[:, None]).squeeze(1).float()
                            fb = model(baseline).gather(1, target[:, None]).squeeze(1).float()
                        fdiff = fx - fb
                        dmax = delta.abs().max().item()
                        fmax = fdiff.abs().max().item()
                        dsum = attr.float().flatten(1).sum(1) - fdiff
                        rec["ig_delta_max_abs"] = dmax
                        rec["ig_fdiff_max_abs"] = fmax
                        rec["completeness_rel"] = dmax / fmax if fmax > 0 else None
                        rec["completeness_rel_f32sum"] = (
                            dsum.abs().max().item() / fmax if fmax > 0 else None)
                    log(f"[done] {case} {dname} {m}: {rec['seconds']:.4f} s "
                        f"({rec['explanations_per_s']:.1f} expl/s) peak_mib={rec['peak_mib']} "
                        f"completeness_rel={rec['completeness_rel']}")
                del res
                print(json.dumps(rec), flush=True)
            del sal, ig, nt, fns, model, x, baseline
            if dev.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
