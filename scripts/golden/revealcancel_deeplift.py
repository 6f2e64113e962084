"""Golden DeepLIFT RevealCancel / Rescale scores from the authors' `deeplift` package.

Produces
    crates/core/tests/data/revealcancel/net_a.safetensors
    crates/core/tests/data/revealcancel/net_b.safetensors

Source of truth: `deeplift` 0.6.13.0 (PyPI; GitHub kundajelab/deeplift, the
package of Shrikumar, Greenside & Kundaje 2017, "Learning Important Features
Through Propagating Activation Differences"), run on TensorFlow 1.15.0 (the
package is written against the TF1 graph API: tf.placeholder / tf.Session /
tf.assign / tf.scatter_update; it has no tf.compat.v1 port, so TF 2.x does not
work).  Versions actually used: CPython 3.7.16, tensorflow-cpu 1.15.0,
numpy 1.18.5, h5py 2.10.0, protobuf 3.20.3, PyYAML 6.0.1, safetensors 0.4.5.
They are written into the safetensors metadata too (the deeplift version from
pip's metadata: the 0.6.13.0 package's own deeplift.__version__ still reads
'0.6.12.0').  Reruns give identical tensors (the files' bytes may differ only
in the order of the metadata header).

Set-up (TF 1.15 has wheels only up to Python 3.7; pyenv's 3.7 is used):

    /root/.pyenv/versions/3.7.16/bin/python -m venv /work/venv-deeplift
    /work/venv-deeplift/bin/pip install "pip<24"
    /work/venv-deeplift/bin/pip install "tensorflow-cpu==1.15.0" \\
        "protobuf==3.20.3" "numpy<1.19" "h5py<3" pyyaml "safetensors==0.4.5"
    /work/venv-deeplift/bin/pip install --no-deps "deeplift==0.6.13.0"

Run from the repository root:

    /work/venv-deeplift/bin/python scripts/golden/revealcancel_deeplift.py

Networks (float32, PyTorch layout weight (out, in)):
    net A: Dense 6->5, ReLU, Dense 5->4, ReLU, Dense 4->3      seed 20170410
    net B: Dense 10->16, ReLU, Dense 16->16, ReLU, Dense 16->4 seed 20170411
    w_k ~ N(0, 1/in) , b_k ~ N(0, 0.25^2), drawn with numpy RandomState(seed)
    in the order w1,b1,w2,b2,w3,b3, then x ~ U[-1.5,1.5] (5,in), then
    ref_other ~ U[-0.5,0.5] (in,).  In net A a few weights are then set to
    exactly 0 (w1[0,0], w1[3,2], w2[1,1], w3[2,0]) so the "weight == 0"
    branches of the Dense rule are exercised.

The deeplift model is made the way the package's README does it: a Keras
Sequential (here tf.keras 1.15) of Dense(linear) + Activation('relu') layers,
saved to HDF5 and converted with
    deeplift.conversion.kerasapi_conversion.convert_model_from_saved_files(
        h5, nonlinear_mxts_mode=NonlinearMxtsMode.RevealCancel | .Rescale)
which gives the deeplift layers [Input, Dense, ReLU, Dense, ReLU, Dense]
(DenseMxtsMode.Linear, the default).  Scores:
    model.get_target_contribs_func(find_scores_layer_idx=0,
                                   target_layer_idx=-1)
       (task_idx=u, input_data_list=[x], input_references_list=[ref],
        batch_size=10, progress_update=None)
i.e. contributions of the input layer to the *pre-activation* output of the
last Dense layer (the logits; there is no final activation) for output unit
u, with the default ScoringMode.OneAndZeros (multiplier 1 on unit u, 0 on
the others, same for the positive and the negative multiplier).  The
returned "contribs" of the input layer are
    pos_mxts*pos_contribs + neg_mxts*neg_contribs = m * (x - ref)
(input pos_contribs = delta*[delta>0], neg_contribs = delta*[delta<0]; the
Dense rule gives the input the same increment for its pos and neg
multiplier, so m = pos_mxts = neg_mxts, and deeplift's own get_mxts() for an
Input layer is 0.5*(pos_mxts + neg_mxts) = m).

Keys (U = output units, N = 5 rows, D = input width):
    w1,b1,w2,b2,w3,b3      float32 weights, PyTorch layout (out,in) / (out,)
    x                      (N,D) inputs
    ref_zero               (D,) all zeros
    ref_other              (D,) the non-zero reference, used for every row
    revealcancel_zero      (U,N,D) deeplift RevealCancel contributions, ref_zero
    revealcancel_other     (U,N,D) same with ref_other
    rescale_zero           (U,N,D) deeplift Rescale contributions, ref_zero
    rescale_other          (U,N,D) same with ref_other
    logits_x               (N,U)  f(x)  (deeplift's own forward pass of the
                                  converted model; equals tf.keras predict)
    logits_ref_zero        (U,)   f(ref_zero)
    logits_ref_other       (U,)   f(ref_other)
  extra edge-case keys (ref_other only):
    x_edge                 (3,D)  row 0: x[0] with features 0,2 set exactly to
                                  ref_other (delta == 0 exactly);
                                  row 1: equal to ref_other (all deltas 0);
                                  row 2: x[1] with feature 1 set to ref_other
    revealcancel_edge_other, rescale_edge_other  (U,3,D)
    logits_x_edge          (3,U)
  float64 companions (NOT from the package; see "float32 caveat" below):
    revealcancel_zero_f64, revealcancel_other_f64, revealcancel_edge_other_f64
                           the NumPy mirror of the package's algorithm (below)
                           run in float64 (same 1e-7 pseudocount), stored as
                           float32.

float32 caveat.  Where a ReLU's input positive (or negative) part is exactly
0, the package substitutes 1e-7 and evaluates relu(zr + 1e-7) - relu(zr) in
float32; with |zr| ~ 0.2 the float32 spacing is ~1.5e-8, so the resulting
"multiplier" (that difference / 1e-7) is e.g. 1.0058 or 0.5215 instead of the
limit 1 or 0.5.  That multiplier reaches real contributions through hidden
units whose own delta is exactly 0 (both ReLU inputs clipped) but whose
pos/neg parts are non-zero.  In net A this makes the package's float32 values
differ from the float64 computation by up to ~2e-3 (RevealCancel only);
elsewhere (net B, Rescale) float32 vs float64 agree to ~1e-7.  A float32
implementation with the package's operation order reproduces the package to
~1e-7 (the NumPy float32 mirror here is bit-identical; reordering the matmul
sums moved results by <= 1.3e-7); a float64 one should be compared with the
*_f64 keys.

Conventions of the package that matter (see the report / Rust docs):
  * everything is float32 inside TF;
  * NEAR_ZERO_THRESHOLD = 1e-7.  Rescale: where |delta_in| < 1e-7 the
    multiplier is the gradient at the *reference* (ReLU: 1 if ref_in > 0 else
    0; ref_in == 0 gives 0); otherwise delta_out/delta_in.
  * RevealCancel: the input pos/neg contributions of the ReLU are passed
    through pseudocount_near_zero (|t| < 0.5e-7 -> t + 1e-7 if t >= 0, t - 1e-7
    if t < 0) both before the four ReLU evaluations and in the denominators of
    the multipliers, so summation-to-delta holds only up to ~1e-7 where a
    pos or neg part is exactly 0;
  * zero input deltas to a Dense layer receive 0.5*(pos_mxt+neg_mxt) @ W;
    zero weights count in neither the positive nor the negative part.
The script re-implements the whole rule in NumPy (float32, same operation
order) and checks it against the package, and checks summation-to-delta.
"""
import json
import os
import sys
import tempfile

import numpy as np
import pkg_resources

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402
import h5py  # noqa: E402
import deeplift  # noqa: E402
from deeplift.layers import NonlinearMxtsMode  # noqa: E402
from deeplift.conversion import kerasapi_conversion as kc  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

OUT_DIR = "crates/core/tests/data/revealcancel"

NETS = {
    "net_a": dict(sizes=(6, 5, 4, 3), seed=20170410,
                  zero_w=[("w1", 0, 0), ("w1", 3, 2), ("w2", 1, 1), ("w3", 2, 0)]),
    "net_b": dict(sizes=(10, 16, 16, 4), seed=20170411, zero_w=[]),
}


def make_params(sizes, seed, zero_w):
    rs = np.random.RandomState(seed)
    p = {}
    for k in range(3):
        fan_in, fan_out = sizes[k], sizes[k + 1]
        p["w%d" % (k + 1)] = (rs.normal(0.0, 1.0, (fan_out, fan_in))
                              / np.sqrt(fan_in)).astype(np.float32)
        p["b%d" % (k + 1)] = rs.normal(0.0, 0.25, (fan_out,)).astype(np.float32)
    x = rs.uniform(-1.5, 1.5, (5, sizes[0])).astype(np.float32)
    ref_other = rs.uniform(-0.5, 0.5, (sizes[0],)).astype(np.float32)
    for (name, i, j) in zero_w:
        p[name][i, j] = 0.0
    return p, x, ref_other


def keras_model(p, sizes):
    K = tf.keras
    m = K.Sequential([
        K.layers.Dense(sizes[1], input_shape=(sizes[0],)),
        K.layers.Activation("relu"),
        K.layers.Dense(sizes[2]),
        K.layers.Activation("relu"),
        K.layers.Dense(sizes[3]),
    ])
    m.set_weights([p["w1"].T, p["b1"], p["w2"].T, p["b2"], p["w3"].T, p["b3"]])
    return m


# ---------------------------------------------------------------- numpy mirror
def pc(t):
    """deeplift.layers.helper_functions.pseudocount_near_zero (float32)."""
    eps = t.dtype.type(1e-7)   # NEAR_ZERO in t's precision (float32 in TF)
    small = (np.abs(t) < t.dtype.type(0.5) * eps).astype(t.dtype)
    return t + (eps * (small * (t >= 0)) - eps * (small * (t < 0)))


def relu(z):
    return np.maximum(z, np.float32(0))


def np_deeplift(p, x, ref, unit, mode):
    """Independent NumPy version of deeplift's Dense(Linear)/ReLU rules."""
    f32 = x.dtype.type          # np.float32 mirrors the package exactly
    ws = [p["w1"].T, p["w2"].T, p["w3"].T]       # (in, out) as deeplift's kernel
    bs = [p["b1"], p["b2"], p["b3"]]
    a, r = x, np.broadcast_to(ref, x.shape).astype(f32)
    dense = []   # per Dense layer: (input delta, kernel, pos_c, neg_c)
    acts = []    # per ReLU: data for the backward pass
    for k in range(3):
        W = ws[k]
        d = a - r
        dp, dn = d * (d > 0), d * (d < 0)
        Wp, Wn = W * (W > 0), W * (W < 0)
        pos_c = dp @ Wp + dn @ Wn
        neg_c = dp @ Wn + dn @ Wp
        z, zr = a @ W + bs[k], r @ W + bs[k]
        dense.append((d, W, pos_c, neg_c))
        if k == 2:
            out, out_r = z, zr
            break
        y, yr = relu(z), relu(zr)
        dz, dy = z - zr, y - yr
        if mode == "revealcancel":
            ip, ineg = pc(pos_c), pc(neg_c)
            pos = f32(0.5) * ((relu(zr + ip) - relu(zr))
                              + (relu(zr + ineg + ip) - relu(zr + ineg)))
            neg = f32(0.5) * ((relu(zr + ineg) - relu(zr))
                              + (relu(zr + ip + ineg) - relu(zr + ip)))
            sp, sn = pos / pc(pos_c), neg / pc(neg_c)
        else:
            near = (np.abs(dz) < f32(1e-7)).astype(f32)
            grad_ref = (zr > 0).astype(f32)
            s = near * grad_ref + (f32(1) - near) * (dy / (dz + f32(1) * near))
            sp = sn = s
        acts.append((sp, sn))
        a, r = y, yr
    n = x.shape[0]
    mp = np.zeros((n, ws[2].shape[1]), f32)
    mp[:, unit] = 1
    mn = mp.copy()
    for k in (2, 1, 0):
        d, W, _, _ = dense[k]
        WT = W.T
        WTp, WTn = WT * (WT > 0), WT * (WT < 0)
        inc = (d > 0) * (mp @ WTp + mn @ WTn)
        inc = inc + (d < 0) * (mp @ WTn + mn @ WTp)
        inc = inc + (d == 0) * ((f32(0.5) * (mp + mn)) @ WT)
        if k == 0:
            d0 = d
            return inc * (d0 * (d0 > 0)) + inc * (d0 * (d0 < 0)), out, out_r
        sp, sn = acts[k - 1]
        mp, mn = sp * inc, sn * inc


# ---------------------------------------------------------------- deeplift
def deeplift_scores(h5, mode, x, refs, units):
    model = kc.convert_model_from_saved_files(
        h5, nonlinear_mxts_mode=mode, verbose=False)
    layers = model.get_layers()
    names = [type(l).__name__ for l in layers]
    assert names == ["Input", "Dense", "ReLU", "Dense", "ReLU", "Dense"], names
    fn = model.get_target_contribs_func(find_scores_layer_idx=0,
                                        target_layer_idx=-1)
    fwd = deeplift.util.compile_func([layers[0].get_activation_vars()],
                                     layers[-1].get_activation_vars())
    res = {}
    for rname, ref in refs.items():
        res[rname] = np.stack([
            np.array(fn(task_idx=u, input_data_list=[x],
                        input_references_list=[ref], batch_size=10,
                        progress_update=None), dtype=np.float32)
            for u in range(units)])
    return res, fwd


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    meta = {
        "generator": "scripts/golden/revealcancel_deeplift.py",
        # the 0.6.13.0 wheel still says __version__ = '0.6.12.0'
        "deeplift": pkg_resources.get_distribution("deeplift").version,
        "tensorflow": tf.__version__, "numpy": np.__version__,
        "h5py": h5py.__version__, "python": sys.version.split()[0],
        "target": "pre-activation of last Dense (logits), OneAndZeros",
        "find_scores_layer_idx": "0", "target_layer_idx": "-1",
    }
    report = {}
    for net, cfg in NETS.items():
        sizes = cfg["sizes"]
        p, x, ref_other = make_params(sizes, cfg["seed"], cfg["zero_w"])
        D, U = sizes[0], sizes[3]
        ref_zero = np.zeros((D,), np.float32)
        x_edge = np.stack([x[0].copy(), ref_other.copy(), x[1].copy()])
        x_edge[0, [0, 2]] = ref_other[[0, 2]]
        x_edge[2, 1] = ref_other[1]
        km = keras_model(p, sizes)
        tmp = tempfile.mkdtemp()
        h5 = os.path.join(tmp, net + ".h5")
        km.save(h5)
        keras_logits = km.predict(x)

        out = dict(p)
        out.update(x=x, ref_zero=ref_zero, ref_other=ref_other, x_edge=x_edge)
        refs = {"zero": ref_zero, "other": ref_other}
        for mname, mode in (("revealcancel", NonlinearMxtsMode.RevealCancel),
                            ("rescale", NonlinearMxtsMode.Rescale)):
            res, fwd = deeplift_scores(h5, mode, x, refs, U)
            for rname in refs:
                out["%s_%s" % (mname, rname)] = res[rname]
            edge, _ = deeplift_scores(h5, mode, x_edge, {"other": ref_other}, U)
            out["%s_edge_other" % mname] = edge["other"]
        out["logits_x"] = np.asarray(fwd([x]), np.float32)
        out["logits_x_edge"] = np.asarray(fwd([x_edge]), np.float32)
        out["logits_ref_zero"] = np.asarray(fwd([ref_zero[None]]), np.float32)[0]
        out["logits_ref_other"] = np.asarray(fwd([ref_other[None]]), np.float32)[0]
        assert np.allclose(out["logits_x"], keras_logits, atol=1e-6)

        # ---- sanity: summation-to-delta and the NumPy mirror
        rep = {}
        for mname in ("revealcancel", "rescale"):
            for rname, xx, lr in (("zero", x, out["logits_ref_zero"]),
                                  ("other", x, out["logits_ref_other"]),
                                  ("edge_other", x_edge, out["logits_ref_other"])):
                lx = out["logits_x_edge"] if rname == "edge_other" else out["logits_x"]
                c = out["%s_%s" % (mname, rname)]
                s2d = np.abs(c.sum(-1) - (lx - lr[None]).T).max()
                ref = ref_zero if rname == "zero" else ref_other
                mirror = np.stack([np_deeplift(p, xx, ref, u, mname)[0]
                                   for u in range(U)])
                rep["%s_%s" % (mname, rname)] = dict(
                    sum_to_delta_maxabs=float(s2d),
                    numpy_mirror_maxabs=float(np.abs(mirror - c).max()),
                    max_abs_value=float(np.abs(c).max()))
                assert s2d < 1e-5, (net, mname, rname, s2d)
                assert np.abs(mirror - c).max() < 1e-5, (net, mname, rname)
            rep["revealcancel_vs_rescale_maxabs_other"] = float(np.abs(
                out["revealcancel_other"] - out["rescale_other"]).max())
        for rname, xx, ref in (("zero", x, ref_zero), ("other", x, ref_other),
                               ("edge_other", x_edge, ref_other)):
            p64 = {k: v.astype(np.float64) for k, v in p.items()}
            m64 = np.stack([np_deeplift(p64, xx.astype(np.float64),
                                        ref.astype(np.float64), u,
                                        "revealcancel")[0] for u in range(U)])
            out["revealcancel_%s_f64" % rname] = m64.astype(np.float32)
            rep["revealcancel_%s" % rname]["f64_vs_package_maxabs"] = float(
                np.abs(m64 - out["revealcancel_%s" % rname]).max())
            for mname in ("rescale",):
                r64 = np.stack([np_deeplift(p64, xx.astype(np.float64),
                                            ref.astype(np.float64), u,
                                            mname)[0] for u in range(U)])
                rep["%s_%s" % (mname, rname)]["f64_vs_package_maxabs"] = float(
                    np.abs(r64 - out["%s_%s" % (mname, rname)]).max())
        report[net] = rep
        out = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}
        save_file(out, os.path.join(OUT_DIR, net + ".safetensors"),
                  metadata=dict(meta, net=net, seed=str(cfg["seed"]),
                                sizes=json.dumps(sizes)))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
