"""Golden DeepLIFT RevealCancel / Rescale scores from the authors' `deeplift` package.

Produces
    crates/core/tests/data/revealcancel/net_a.safetensors
    crates/core/tests/data/revealcancel/net_b.safetensors
    crates/core/tests/data/revealcancel/net_c.safetensors   (CNN, see "net C")

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

net C (a small CNN; same package, versions, run and score call as above).
    Keras Sequential, channels_last, float32, input (8, 8, 2) [H, W, C]:
      Conv2D(4, 3x3, strides 1, padding 'same')  -> Activation('relu')
      Conv2D(6, 3x3, strides 2, padding 'valid') -> Activation('relu')  3x3x6
      Flatten -> Dense(8) -> Activation('relu') -> Dense(3)
    i.e. in PyTorch terms Conv2d(2,4,3,stride=1,padding=1), ReLU,
    Conv2d(4,6,3,stride=2,padding=0), ReLU, Flatten, Linear(54,8), ReLU,
    Linear(8,3).  Converted deeplift layers: [Input, Conv2D, ReLU, Conv2D,
    ReLU, Flatten, Dense, ReLU, Dense] (ConvMxtsMode.Linear, the default);
    the Conv2D layers get TF's padding strings PaddingMode.same / .valid
    and call tf.nn.conv2d / tf.nn.conv2d_transpose with them ('SAME' with a
    3x3 kernel and stride 1 pads 1 on each side; conv2 with 'VALID', stride 2
    reads rows/cols 0..6 of its 8x8 input, so row/col 7 of conv1's output
    gets multiplier 0).  The conv rule is the Dense rule with conv in place
    of the matmul: pos = conv(d+, W+) + conv(d-, W-), neg = conv(d-, W+) +
    conv(d+, W-); backward, inputs with d > 0 get convT(m+, W+) + convT(m-,
    W-), d < 0 get convT(m+, W-) + convT(m-, W+), d == 0 get
    convT(0.5*(m+ + m-), W).
    Seed 20170412, numpy RandomState, drawn in Keras layout in the order
    k1 (3,3,2,4), b1, k2 (3,3,4,6), b2, k3 (54,8), b3, k4 (8,3), b4 with
    kernel ~ N(0,1)/sqrt(fan_in) (fan_in = kh*kw*cin, or in-features) and
    bias ~ N(0, 0.25^2); then x ~ U[-1.5,1.5] (5,8,8,2) and ref_other ~
    U[-0.5,0.5] (8,8,2) (NHWC).  Then k1[1,1,0,2], k2[0,2,3,1] and k3[10,3]
    (Keras indices) are set to exactly 0.
    Everything is STORED IN PYTORCH LAYOUT (NCHW), no conversion needed:
    w1 (4,2,3,3), w2 (6,4,3,3) = Keras kernel.transpose(3,2,0,1); b1 (4,),
    b2 (6,); w3 (8,54) in PyTorch's (C,H,W) flatten order,
        w3[o, c*9 + h*3 + w] = k3[(h*3 + w)*6 + c, o]
    (Keras flattens (H,W,C)); b3 (8,); w4 (3,8); b4 (3,).
    Keys (U = 3, N = 5):
      x (N,2,8,8), ref_zero (2,8,8), ref_other (2,8,8)
      x_edge (3,2,8,8)  row 0: x[0] with pixels (h,w) = (0,0), (3,4), (7,7)
                        set to ref_other (all channels, delta == 0 exactly);
                        row 1: equal to ref_other; row 2: x[1] with channel 1
                        of pixel (2,5) set to ref_other
      revealcancel_zero, revealcancel_other, rescale_zero, rescale_other
                        (U,N,2,8,8)  package contributions (NHWC -> NCHW)
      revealcancel_edge_other, rescale_edge_other  (U,3,2,8,8)
      logits_x (N,U), logits_x_edge (3,U), logits_ref_zero (U,),
      logits_ref_other (U,)     deeplift's forward pass (== tf.keras predict)
      revealcancel_zero_f64, revealcancel_other_f64,
      revealcancel_edge_other_f64   NumPy float64 mirror (np_deeplift_cnn, NCHW
                        on the stored weights), stored as float32; here it
                        agrees with the package to ~3e-8 (no 1e-7-pseudocount
                        amplification as in net A).
    Checks: a plain-loop NumPy NCHW forward with the stored weights
    reproduces all logits (< 1e-5); summation-to-delta (< 1e-5); the NumPy
    mirror in float32 matches the package (< 1e-5; not bit-identical, the
    conv sums are ordered differently); delta == 0 inputs of x_edge get
    exactly 0; RevealCancel differs from Rescale by > 1e-2.
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


def relu_multipliers(z, zr, pos_c, neg_c, mode, f32):
    """The ReLU's (positive, negative) multipliers under deeplift's rule `mode`."""
    if mode == "revealcancel":
        ip, ineg = pc(pos_c), pc(neg_c)
        pos = f32(0.5) * ((relu(zr + ip) - relu(zr))
                          + (relu(zr + ineg + ip) - relu(zr + ineg)))
        neg = f32(0.5) * ((relu(zr + ineg) - relu(zr))
                          + (relu(zr + ip + ineg) - relu(zr + ip)))
        return pos / pc(pos_c), neg / pc(neg_c)
    dz, dy = z - zr, relu(z) - relu(zr)
    near = (np.abs(dz) < f32(1e-7)).astype(f32)
    grad_ref = (zr > 0).astype(f32)
    s = near * grad_ref + (f32(1) - near) * (dy / (dz + f32(1) * near))
    return s, s


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
        acts.append(relu_multipliers(z, zr, pos_c, neg_c, mode, f32))
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
MLP_LAYERS = ["Input", "Dense", "ReLU", "Dense", "ReLU", "Dense"]


def deeplift_scores(h5, mode, x, refs, units, expect=MLP_LAYERS):
    model = kc.convert_model_from_saved_files(
        h5, nonlinear_mxts_mode=mode, verbose=False)
    layers = model.get_layers()
    names = [type(l).__name__ for l in layers]
    assert names == expect, names
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


# ---------------------------------------------------------------- net C (CNN)
NET_C = dict(seed=20170412, in_hwc=(8, 8, 2), units=3,
             # zero weights, Keras layout: conv kernels (kh,kw,cin,cout),
             # dense kernel (in,out) with in in Keras' (h,w,c) flatten order
             zero_w=[("k1", (1, 1, 0, 2)), ("k2", (0, 2, 3, 1)),
                     ("k3", (10, 3))],
             # x_edge row 0: these pixels (h, w) of x[0] set to ref_other
             edge_pixels=[(0, 0), (3, 4), (7, 7)],
             # x_edge row 2: this (h, w, c) of x[1] set to ref_other
             edge_entry=(2, 5, 1))
NET_C_LAYERS = ["Input", "Conv2D", "ReLU", "Conv2D", "ReLU", "Flatten",
                "Dense", "ReLU", "Dense"]


def make_params_c(cfg):
    """Keras-layout parameters, drawn in the order k1,b1,k2,b2,k3,b3,k4,b4."""
    rs = np.random.RandomState(cfg["seed"])
    H, W, C = cfg["in_hwc"]
    shapes = [(3, 3, C, 4), (3, 3, 4, 6), (3 * 3 * 6, 8), (8, cfg["units"])]
    k = {}
    for i, shp in enumerate(shapes):
        fan_in = int(np.prod(shp[:-1]))
        k["k%d" % (i + 1)] = (rs.normal(0.0, 1.0, shp)
                              / np.sqrt(fan_in)).astype(np.float32)
        k["b%d" % (i + 1)] = rs.normal(0.0, 0.25, (shp[-1],)).astype(np.float32)
    x = rs.uniform(-1.5, 1.5, (5, H, W, C)).astype(np.float32)
    ref_other = rs.uniform(-0.5, 0.5, (H, W, C)).astype(np.float32)
    for (name, idx) in cfg["zero_w"]:
        k[name][idx] = 0.0
    return k, x, ref_other


def keras_to_torch_c(k):
    """Keras (kh,kw,cin,cout)/(in,out) -> PyTorch (cout,cin,kh,kw)/(out,in);
    the first Dense re-ordered from Keras' (h,w,c) to PyTorch's (c,h,w)
    flatten order."""
    p = {"w1": k["k1"].transpose(3, 2, 0, 1), "b1": k["b1"],
         "w2": k["k2"].transpose(3, 2, 0, 1), "b2": k["b2"],
         "w3": k["k3"].reshape(3, 3, 6, 8).transpose(3, 2, 0, 1).reshape(8, 54),
         "b3": k["b3"], "w4": k["k4"].T, "b4": k["b4"]}
    for o in range(8):            # the documented index formula, literally
        for c in range(6):
            for h in range(3):
                for w in range(3):
                    assert (p["w3"][o, c * 9 + h * 3 + w]
                            == k["k3"][(h * 3 + w) * 6 + c, o])
    return {n: np.ascontiguousarray(v) for n, v in p.items()}


def keras_model_c(k, cfg):
    K = tf.keras
    m = K.Sequential([
        K.layers.Conv2D(4, 3, strides=1, padding="same",
                        input_shape=cfg["in_hwc"]),
        K.layers.Activation("relu"),
        K.layers.Conv2D(6, 3, strides=2, padding="valid"),
        K.layers.Activation("relu"),
        K.layers.Flatten(),
        K.layers.Dense(8),
        K.layers.Activation("relu"),
        K.layers.Dense(cfg["units"]),
    ])
    m.set_weights([k["k1"], k["b1"], k["k2"], k["b2"],
                   k["k3"], k["b3"], k["k4"], k["b4"]])
    return m


def naive_forward_nchw(p, x):
    """Plain-loop NCHW forward with the PyTorch-layout weights (checks the
    stored layout independently of TF)."""
    def conv(a, w, b, stride, pad):
        n, c, h, wd = a.shape
        o, _, kh, kw = w.shape
        ap = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        ho = (h + 2 * pad - kh) // stride + 1
        wo = (wd + 2 * pad - kw) // stride + 1
        out = np.zeros((n, o, ho, wo), np.float64)
        for i in range(ho):
            for j in range(wo):
                patch = ap[:, :, i * stride:i * stride + kh,
                           j * stride:j * stride + kw]
                for oc in range(o):
                    out[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3)) + b[oc]
        return out
    a = x.astype(np.float64)
    a = np.maximum(conv(a, p["w1"], p["b1"], 1, 1), 0)
    a = np.maximum(conv(a, p["w2"], p["b2"], 2, 0), 0)
    a = a.reshape(a.shape[0], -1)                  # (C,H,W) flatten
    a = np.maximum(a @ p["w3"].T.astype(np.float64) + p["b3"], 0)
    return a @ p["w4"].T.astype(np.float64) + p["b4"]


def conv_nchw(a, w, stride, pad):
    """Cross-correlation, NCHW input, (O,C,kh,kw) weight, symmetric pad."""
    n, c, h, wd = a.shape
    o, _, kh, kw = w.shape
    ap = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, o, ho, wo), a.dtype)
    for i in range(kh):
        for j in range(kw):
            sl = ap[:, :, i:i + stride * (ho - 1) + 1:stride,
                    j:j + stride * (wo - 1) + 1:stride]
            out += np.einsum("nchw,oc->nohw", sl, w[:, :, i, j])
    return out


def conv_t_nchw(g, w, stride, pad, in_hw):
    """Adjoint of conv_nchw (the transposed conv), back to in_hw."""
    n, o, ho, wo = g.shape
    _, c, kh, kw = w.shape
    h, wd = in_hw
    gp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), g.dtype)
    for i in range(kh):
        for j in range(kw):
            gp[:, :, i:i + stride * (ho - 1) + 1:stride,
               j:j + stride * (wo - 1) + 1:stride] += np.einsum(
                   "nohw,oc->nchw", g, w[:, :, i, j])
    return gp[:, :, pad:pad + h, pad:pad + wd]


def np_deeplift_cnn(p, x, ref, unit, mode):
    """NumPy DeepLIFT (RevealCancel / Rescale) on net C, NCHW, PyTorch-layout
    weights; same rules as np_deeplift, the conv rule being the Dense one with
    conv / transposed conv in place of the matmuls (deeplift's
    Conv2D._build_pos_and_neg_contribs / _get_mxts_increments_for_inputs)."""
    f32 = x.dtype.type
    lin = [("conv", p["w1"], p["b1"], 1, 1), ("conv", p["w2"], p["b2"], 2, 0),
           ("dense", p["w3"].T, p["b3"]), ("dense", p["w4"].T, p["b4"])]
    a, r = x, np.broadcast_to(ref, x.shape).astype(f32)
    saved, acts = [], []
    for k, L in enumerate(lin):
        unflat = None
        if L[0] == "dense" and a.ndim == 4:       # Flatten, (C,H,W) order
            unflat = a.shape
            a, r = a.reshape(a.shape[0], -1), r.reshape(r.shape[0], -1)
        d = a - r
        dp, dn = d * (d > 0), d * (d < 0)
        if L[0] == "conv":
            _, W, b, s, pd = L
            Wp, Wn = W * (W > 0), W * (W < 0)
            pos_c = conv_nchw(dp, Wp, s, pd) + conv_nchw(dn, Wn, s, pd)
            neg_c = conv_nchw(dn, Wp, s, pd) + conv_nchw(dp, Wn, s, pd)
            z = conv_nchw(a, W, s, pd) + b[None, :, None, None]
            zr = conv_nchw(r, W, s, pd) + b[None, :, None, None]
        else:
            _, W, b = L
            Wp, Wn = W * (W > 0), W * (W < 0)
            pos_c = dp @ Wp + dn @ Wn
            neg_c = dp @ Wn + dn @ Wp
            z, zr = a @ W + b, r @ W + b
        saved.append((L, d, unflat))
        if k == len(lin) - 1:
            out, out_r = z, zr
            break
        y, yr = relu(z), relu(zr)
        acts.append(relu_multipliers(z, zr, pos_c, neg_c, mode, f32))
        a, r = y, yr
    mp = np.zeros(out.shape, f32)
    mp[:, unit] = 1
    mn = mp.copy()
    for L, d, unflat in reversed(saved):
        if L[0] == "conv":
            _, W, _, s, pd = L
            hw = d.shape[2:]
            Wp, Wn = W * (W > 0), W * (W < 0)
            ct = lambda g, w: conv_t_nchw(g, w, s, pd, hw)  # noqa: E731
            inc = (d > 0) * (ct(mp, Wp) + ct(mn, Wn))
            inc = inc + (d < 0) * (ct(mp, Wn) + ct(mn, Wp))
            inc = inc + (d == 0) * ct(f32(0.5) * (mp + mn), W)
        else:
            W = L[1]
            WT = W.T
            WTp, WTn = WT * (WT > 0), WT * (WT < 0)
            inc = (d > 0) * (mp @ WTp + mn @ WTn)
            inc = inc + (d < 0) * (mp @ WTn + mn @ WTp)
            inc = inc + (d == 0) * ((f32(0.5) * (mp + mn)) @ WT)
        if not acts:
            return inc * (d * (d > 0)) + inc * (d * (d < 0)), out, out_r
        if unflat is not None:                    # back through Flatten
            inc = inc.reshape(unflat)
        sp, sn = acts.pop()
        mp, mn = sp * inc, sn * inc


def nhwc_to_nchw(t):
    """(..., H, W, C) -> (..., C, H, W)."""
    nd = t.ndim
    return np.ascontiguousarray(np.moveaxis(t, nd - 1, nd - 3))


def run_net_c(meta):
    cfg = NET_C
    U = cfg["units"]
    k, x, ref_other = make_params_c(cfg)
    p = keras_to_torch_c(k)
    ref_zero = np.zeros(cfg["in_hwc"], np.float32)
    x_edge = np.stack([x[0].copy(), ref_other.copy(), x[1].copy()])
    for (h, w) in cfg["edge_pixels"]:
        x_edge[0, h, w, :] = ref_other[h, w, :]
    h, w, c = cfg["edge_entry"]
    x_edge[2, h, w, c] = ref_other[h, w, c]

    km = keras_model_c(k, cfg)
    tmp = tempfile.mkdtemp()
    h5 = os.path.join(tmp, "net_c.h5")
    km.save(h5)
    keras_logits = km.predict(x)
    # the converted Conv2D layers: TF padding strings, channels_last
    chk = kc.convert_model_from_saved_files(
        h5, nonlinear_mxts_mode=NonlinearMxtsMode.RevealCancel, verbose=False)
    convs = [l for l in chk.get_layers() if type(l).__name__ == "Conv2D"]
    from deeplift.layers.convolutional import PaddingMode
    assert [(l.padding, tuple(l.strides), l.data_format) for l in convs] == [
        (PaddingMode.same, (1, 1), "channels_last"),
        (PaddingMode.valid, (2, 2), "channels_last")], \
        [(l.padding, l.strides, l.data_format) for l in convs]

    out = dict(p)   # NHWC data kept aside, NCHW stored
    out.update(x=nhwc_to_nchw(x), ref_zero=nhwc_to_nchw(ref_zero),
               ref_other=nhwc_to_nchw(ref_other), x_edge=nhwc_to_nchw(x_edge))
    refs = {"zero": ref_zero, "other": ref_other}
    raw = {}
    for mname, mode in (("revealcancel", NonlinearMxtsMode.RevealCancel),
                        ("rescale", NonlinearMxtsMode.Rescale)):
        res, fwd = deeplift_scores(h5, mode, x, refs, U, expect=NET_C_LAYERS)
        for rname in refs:
            raw["%s_%s" % (mname, rname)] = res[rname]
        edge, _ = deeplift_scores(h5, mode, x_edge, {"other": ref_other}, U,
                                  expect=NET_C_LAYERS)
        raw["%s_edge_other" % mname] = edge["other"]
    for key, v in raw.items():                   # (U,N,H,W,C) -> (U,N,C,H,W)
        out[key] = nhwc_to_nchw(v)
    out["logits_x"] = np.asarray(fwd([x]), np.float32)
    out["logits_x_edge"] = np.asarray(fwd([x_edge]), np.float32)
    out["logits_ref_zero"] = np.asarray(fwd([ref_zero[None]]), np.float32)[0]
    out["logits_ref_other"] = np.asarray(fwd([ref_other[None]]), np.float32)[0]
    assert np.allclose(out["logits_x"], keras_logits, atol=1e-6)

    rep = {}
    # ---- the PyTorch-layout weights reproduce the logits (plain NumPy, NCHW)
    fw = naive_forward_nchw(p, out["x"])
    fw_edge = naive_forward_nchw(p, out["x_edge"])
    fw_refs = naive_forward_nchw(p, np.stack([out["ref_zero"], out["ref_other"]]))
    rep["numpy_nchw_forward_vs_logits_maxabs"] = float(max(
        np.abs(fw - out["logits_x"]).max(),
        np.abs(fw_edge - out["logits_x_edge"]).max(),
        np.abs(fw_refs[0] - out["logits_ref_zero"]).max(),
        np.abs(fw_refs[1] - out["logits_ref_other"]).max()))
    assert rep["numpy_nchw_forward_vs_logits_maxabs"] < 1e-5, rep

    # ---- summation-to-delta, NumPy mirror (f32 and f64)
    p64 = {n: v.astype(np.float64) for n, v in p.items()}
    for mname in ("revealcancel", "rescale"):
        for rname, xx, lr, ref in (
                ("zero", out["x"], out["logits_ref_zero"], out["ref_zero"]),
                ("other", out["x"], out["logits_ref_other"], out["ref_other"]),
                ("edge_other", out["x_edge"], out["logits_ref_other"],
                 out["ref_other"])):
            lx = out["logits_x_edge"] if rname == "edge_other" else out["logits_x"]
            key = "%s_%s" % (mname, rname)
            c = out[key]
            s2d = np.abs(c.sum(axis=(-3, -2, -1)) - (lx - lr[None]).T).max()
            m32 = np.stack([np_deeplift_cnn(p, xx, ref, u, mname)[0]
                            for u in range(U)])
            m64 = np.stack([np_deeplift_cnn(p64, xx.astype(np.float64),
                                            ref.astype(np.float64), u,
                                            mname)[0] for u in range(U)])
            rep[key] = dict(sum_to_delta_maxabs=float(s2d),
                            numpy_mirror_f32_maxabs=float(np.abs(m32 - c).max()),
                            f64_vs_package_maxabs=float(np.abs(m64 - c).max()),
                            max_abs_value=float(np.abs(c).max()))
            assert s2d < 1e-5, ("net_c", key, s2d)
            assert np.abs(m32 - c).max() < 1e-5, ("net_c", key, rep[key])
            if mname == "revealcancel":
                out[key + "_f64"] = m64.astype(np.float32)
    for rname in ("zero", "other", "edge_other"):
        rep["revealcancel_vs_rescale_maxabs_" + rname] = float(np.abs(
            out["revealcancel_" + rname] - out["rescale_" + rname]).max())
    assert rep["revealcancel_vs_rescale_maxabs_other"] > 1e-2, rep
    # edge rows: delta == 0 entries get exactly 0, row 1 is all 0
    for key in ("revealcancel_edge_other", "rescale_edge_other"):
        e = out[key]
        assert np.all(e[:, 1] == 0)
        for (h, w) in cfg["edge_pixels"]:
            assert np.all(e[:, 0, :, h, w] == 0)
        h, w, c = cfg["edge_entry"]
        assert np.all(e[:, 2, c, h, w] == 0)

    out = {n: np.ascontiguousarray(v, dtype=np.float32) for n, v in out.items()}
    save_file(out, os.path.join(OUT_DIR, "net_c.safetensors"),
              metadata=dict(meta, net="net_c", seed=str(cfg["seed"]),
                            layout="NCHW; weights PyTorch (out,in,kh,kw)/(out,in)",
                            arch=json.dumps(
                                ["Conv2d(2,4,3,stride=1,padding=1)", "ReLU",
                                 "Conv2d(4,6,3,stride=2,padding=0)", "ReLU",
                                 "Flatten(C,H,W)", "Linear(54,8)", "ReLU",
                                 "Linear(8,3)"])))
    return rep


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
    report["net_c"] = run_net_c(meta)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
