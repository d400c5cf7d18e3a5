#!/usr/bin/env python3
"""Fits the built-in MACO magnitude spectrum (src/render/maco.rs `DEFAULT_SPECTRUM`) offline.

For every image of a folder (default: the shared `imagenet-samples`, one ImageNet image per class):
centre square crop, antialiased resize to --size, [0,1] → clamped logit → decorrelated colour
coordinates (inverse of lucid's normalised colour matrix, the map the renderer applies before its
sigmoid) → |rfft2| per channel, averaged over the images. Then per channel a least-squares fit of
log|F| = log a_c − alpha·log f over 2/size ≤ f ≤ 0.4 (one alpha shared by the channels), and the DC
bin relative to a_c·size^alpha. Prints the constants for the Rust table.

    python benches/fit_spectrum.py --images $ATLAS_DATA/imagenet-samples --size 80
"""

import argparse
import glob
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
import fv_ref as R  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", default=os.path.join(os.environ.get("ATLAS_DATA", ""), "imagenet-samples"))
    p.add_argument("--size", type=int, default=80)
    p.add_argument("--limit", type=int, default=0)
    a = p.parse_args()
    files = sorted(glob.glob(os.path.join(a.images, "**", "*.*"), recursive=True))
    files = [f for f in files if f.lower().endswith((".jpg", ".jpeg", ".png", ".webp"))]
    if a.limit:
        files = files[:a.limit]
    inv = np.linalg.inv(R.COLOR_N)
    s = a.size
    acc = np.zeros((3, s, s // 2 + 1))
    for f in files:
        im = Image.open(f).convert("RGB")
        w, h = im.size
        m = min(w, h)
        im = im.crop(((w - m) // 2, (h - m) // 2, (w - m) // 2 + m, (h - m) // 2 + m))
        x = np.asarray(im.resize((s, s), Image.BILINEAR, reducing_gap=None), np.float64) / 255.0
        x = np.clip(x, 1e-3, 1 - 1e-3)
        t = np.log(x / (1 - x))  # [s,s,3] logits
        d = np.einsum("ij,yxj->iyx", inv, t)  # rgb_i = sum_j C_ij d_j  →  d = C^-1 rgb
        acc += np.abs(np.fft.rfft2(d, axes=(-2, -1)))
    acc /= len(files)
    fy = np.fft.fftfreq(s)[:, None]
    fx = np.fft.rfftfreq(s)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    sel = (f >= 2.0 / s) & (f <= 0.4)
    lf = np.log(f[sel])
    # shared slope, per-channel intercepts
    rows = []
    ys = []
    for c in range(3):
        for v, l in zip(np.log(acc[c][sel]), lf):
            r = np.zeros(4)
            r[0] = -l
            r[1 + c] = 1.0
            rows.append(r)
            ys.append(v)
    coef, *_ = np.linalg.lstsq(np.array(rows), np.array(ys), rcond=None)
    alpha = coef[0]
    amps = np.exp(coef[1:])
    amps_rel = amps / amps[0]
    dc = acc[:, 0, 0] / (amps * s ** alpha)
    print(f"images {len(files)} size {s}")
    print(f"alpha {alpha:.4f}")
    print("amplitudes (relative to channel 0) " + ",".join(f"{x:.4f}" for x in amps_rel))
    print("dc (relative to a_c * size^alpha) " + ",".join(f"{x:.4f}" for x in dc))
    for c in range(3):
        slope = np.polyfit(lf, np.log(acc[c][sel]), 1)[0]
        print(f"channel {c}: own slope {slope:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
