"""Golden HOG descriptors from scikit-image for crates/metrics/tests/sanity.rs.

Run: /work/venv/bin/python scripts/golden/hog_skimage.py  (scikit-image 0.26.0, numpy, safetensors)
Writes crates/metrics/tests/data/hog_skimage.safetensors: three smooth random maps in [0, 1]
(two 28×28, one 21×26) and their descriptors for the defaults (9 orientations, 8×8 cells,
3×3 blocks, L2-Hys) and for 6 orientations, 4×5 cells, 2×3 blocks.
"""
import numpy as np
from scipy.ndimage import gaussian_filter
from safetensors.numpy import save_file
from skimage.feature import hog

rng = np.random.default_rng(7)
out = {}
for k, (h, w) in enumerate([(28, 28), (28, 28), (21, 26)]):
    m = gaussian_filter(rng.random((h, w)), 1.5)
    m = (m - m.min()) / (m.max() - m.min())
    out[f"map{k}"] = m
    if h == 28:
        out[f"default{k}"] = hog(m, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3), block_norm="L2-Hys", feature_vector=True)
    out[f"custom{k}"] = hog(m, orientations=6, pixels_per_cell=(4, 5), cells_per_block=(2, 3), block_norm="L2-Hys", feature_vector=True)
save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in out.items()}, "crates/metrics/tests/data/hog_skimage.safetensors")
print({k: v.shape for k, v in out.items()})
