#!/usr/bin/env python3
"""Prototype icon renderers in PyTorch, for exploring recipes with scripts/legibility.py before they
are ported to Rust (issue 13, item 2). Never used by the app.

Reads an atlas folder's level (mean activations of its cells, whitening matrix, layer, model) and
renders one icon per cell into a folder of sheets tiled like the atlas's own (so
`scripts/legibility.py --sheets NAME=FOLDER` scores them):

* `--method lucid`: lucid's FFT + decorrelated colour, REC transforms, boundary penalty, Adam 0.05
  (tests/reference/fv_ref.py, the Rust renderer's reference);
* `--method maco`: phase-only optimisation with a fixed 1/f^alpha magnitude spectrum (MACO,
  spec feature-visualisation-modern.md), K random crops per icon and step, pixel noise, optional
  attribution alpha mask composited on white.

    python benches/icon_proto.py --atlas A --level 10 --method maco --steps 128 --out /tmp/maco
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
import fv_ref as R  # noqa: E402


def magnitude(size, alpha, amps, dc=1.0):
    """[3, size, size//2+1]: amps[c] / max(f, 1/size)^alpha, DC scaled by `dc`."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    m = 1.0 / np.maximum(f, 1.0 / size) ** alpha
    m[0, 0] *= dc
    return torch.from_numpy(np.stack([a * m for a in amps]).astype(np.float32))


def crops(img, k, smin, smax, out, centre_sd, gen):
    """K random square crops per icon: side U[smin,smax] of the canvas, centre 0.5+N(0,sd)
    (clamped inside), bilinear through affine_grid, resized to `out`. → [K*B,3,out,out]."""
    b = img.shape[0]
    n = k * b
    side = smin + (smax - smin) * torch.rand(n, generator=gen)
    c = torch.randn(n, 2, generator=gen) * centre_sd
    lim = (1 - side).view(-1, 1)
    c = torch.maximum(torch.minimum(c * 2, lim), -lim)  # centre offset in [-1,1] coordinates
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = side
    theta[:, 1, 1] = side
    theta[:, :, 2] = c
    grid = F.affine_grid(theta, [n, 3, out, out], align_corners=False)
    src = img.repeat(k, 1, 1, 1)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)


def per_icon_objective(acts, v, form, power, where):
    if where == "centre":
        return R.objective(R.centre(acts), v, form, power)
    b, c, h, w = acts.shape
    flat = acts.permute(0, 2, 3, 1).reshape(b * h * w, c)
    vv = v.repeat_interleave(h * w, 0)
    return R.objective(flat, vv, form, power).view(b, h * w).mean(1)


def render(model, li, dirs, a, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    b, s = dirs.shape[0], a.size
    alpha_acc = torch.zeros(b, 1, s, s)
    if a.method == "lucid":
        param = (0.01 * torch.randn(b, 3, s, s // 2 + 1, 2)).requires_grad_(True)
        opt = torch.optim.Adam([param], lr=a.lr)
    else:
        amps = [float(x) for x in a.amps.split(",")]
        mag = magnitude(s, a.alpha, amps, a.dc)
        param = ((torch.rand(b, 3, s, s // 2 + 1, generator=gen) * 2 - 1) * math.pi).requires_grad_(True)
        opt = (torch.optim.NAdam if a.opt == "nadam" else torch.optim.Adam)([param], lr=a.lr)
    for step in range(a.steps):
        opt.zero_grad()
        if a.method == "lucid":
            img = R.to_rgb(param, s, s)
        else:
            img = R.maco_rgb(param, mag, s, s, a.gain)
        img.retain_grad()
        if a.method == "lucid" and a.transforms == "rec":
            x = R.rec_transforms(img, s)
            k = 1
        else:
            k = a.crops
            x = crops(img, k, a.crop_min, a.crop_max, a.input or s, a.centre_sd, gen)
            if a.noise > 0:
                x = x + a.noise * torch.randn(x.shape, generator=gen) + \
                    a.noise * (torch.rand(x.shape, generator=gen) - 0.5)
        _, acts = model(x)
        obj = per_icon_objective(acts[li], dirs.repeat(k, 1), a.form, a.power, a.where)
        obj = obj.view(k, b).mean(0)
        if a.boundary:
            obj = obj - R.boundary_penalty(img)
        (-obj.sum()).backward()
        alpha_acc += img.grad.abs().mean(1, keepdim=True)
        opt.step()
    with torch.no_grad():
        img = R.to_rgb(param, s, s) if a.method == "lucid" else R.maco_rgb(param, mag, s, s, a.gain)
        if a.alpha_mask:
            al = alpha_acc.view(b, -1)
            q = torch.quantile(al, 0.8, dim=1, keepdim=True)
            al = torch.minimum(al, q)
            al = (al / al.max(1, keepdim=True).values).view(b, 1, s, s)
            if a.alpha_blur > 0:
                al = R.blur5(al)
            img = img * al + (1 - al) * 1.0
    if a.out_size and a.out_size != s:
        img = F.interpolate(img, size=(a.out_size, a.out_size), mode="bilinear",
                            align_corners=False, antialias=True)
    return img


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--atlas", required=True)
    p.add_argument("--level", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--method", choices=["lucid", "maco"], default="maco")
    p.add_argument("--steps", type=int, default=128)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--opt", choices=["adam", "nadam"], default="adam")
    p.add_argument("--size", type=int, default=80, help="canvas side")
    p.add_argument("--input", type=int, default=0, help="crop resize side (default canvas)")
    p.add_argument("--out-size", type=int, default=0)
    p.add_argument("--transforms", choices=["rec", "crops"], default="rec")
    p.add_argument("--crops", type=int, default=4)
    p.add_argument("--crop-min", type=float, default=0.6)
    p.add_argument("--crop-max", type=float, default=1.0)
    p.add_argument("--centre-sd", type=float, default=0.1)
    p.add_argument("--noise", type=float, default=0.02)
    p.add_argument("--alpha", type=float, default=1.5, help="magnitude 1/f^alpha")
    p.add_argument("--amps", default="1,1,1")
    p.add_argument("--dc", type=float, default=1.0)
    p.add_argument("--gain", type=float, default=1.0)
    p.add_argument("--form", default="notebook")
    p.add_argument("--power", type=float, default=4.0)
    p.add_argument("--where", choices=["centre", "mean"], default="centre")
    p.add_argument("--boundary", action="store_true")
    p.add_argument("--alpha-mask", action="store_true")
    p.add_argument("--alpha-blur", type=int, default=0)
    p.add_argument("--no-whiten", action="store_true")
    p.add_argument("--limit", type=int, default=0, help="only the first N cells")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.lr is None:
        a.lr = 0.05 if a.method == "lucid" else 0.1
    man = json.load(open(os.path.join(a.atlas, "manifest.json")))
    side, model = R.load(man["model_file"])
    names = [l["name"] for l in side["layers"]]
    li = names.index(man["layer"])
    lvl = next(l for l in man["levels"] if l["grid"] == a.level)
    means = torch.from_numpy(np.load(os.path.join(a.atlas, "levels", str(a.level), "mean_acts.npy")))
    wpath = os.path.join(a.atlas, "whitening.npy")
    dirs = means.float()
    if not a.no_whiten and os.path.isfile(wpath):
        dirs = dirs @ torch.from_numpy(np.load(wpath)).float()
    n = dirs.shape[0] if not a.limit else min(a.limit, dirs.shape[0])
    t0 = time.time()
    per, cols = lvl["icons_per_sheet"], lvl["sheet_columns"]
    os.makedirs(a.out, exist_ok=True)
    icons = []
    for first in range(0, n, per):
        cnt = min(per, n - first)
        img = render(model, li, dirs[first:first + cnt], a, a.seed + first)
        icons.append((img.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy())
    icons = np.concatenate(icons)
    side_px = icons.shape[1]
    for sheet, first in enumerate(range(0, n, per)):
        chunk = icons[first:first + per]
        c = min(cols, len(chunk))
        rows = (len(chunk) + cols - 1) // cols
        canvas = np.full((rows * side_px, c * side_px, 3), 255, np.uint8)
        for t, icon in enumerate(chunk):
            y, x = (t // cols) * side_px, (t % cols) * side_px
            canvas[y:y + side_px, x:x + side_px] = icon
        Image.fromarray(canvas).save(os.path.join(a.out, f"sheet_{sheet:04d}.png"))
    print(f"rendered {n} icons in {time.time() - t0:.1f} s -> {a.out}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
