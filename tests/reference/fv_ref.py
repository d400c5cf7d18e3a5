#!/usr/bin/env python3
"""Independent PyTorch reference for the icon renderer (feature visualisation, spec §4).

Written from the spec and lucid's code, not from the Rust side:

* parameterisation: numpy fftfreq frequencies, scale 1/max(f, 1/max(h,w)), torch.fft.irfftn
  (norm="ortho"), /4, colour decorrelation with lucid's matrix, sigmoid;
* objective: notebook `direction_neuron_cossim_S` form or lucid's clean `direction_neuron` form,
  read at the centre (h//2, w//2) of the layer output;
* the model is the *eager* module rebuilt from the sidecar (models/export.py), not the TorchScript
  file the Rust side runs.

* boundary penalty (lucid `penalize_boundary_complexity(shape, w=5)`, the REC stack's regulariser):
  inside a border band of width 5 px, sum of `(blur(img) - img)^2 + 0.8 (img - 0.5)^2`, blur = 5x5
  kernel with 1 inside and 0.5 on its border, "SAME" zero padding, divided by the same convolution of
  ones; subtracted from the objective of each icon (--boundary);
* MACO parameterisation (--param maco): fixed magnitude r [3,H,W//2+1], trainable phase phi
  [B,3,H,W//2+1]; x = irfft2(r cos phi + i r sin phi, s=(H,W)); per icon standardised over (3,H,W)
  (unbiased std, +1e-4); times --gain; lucid's colour matrix; sigmoid;
* --where all: the objective of every position of the layer output, averaged per icon.

Modes:
  objective  --spectrum S.npy [B,3,H,Wf,2] (or --param maco --phase P.npy --magnitude R.npy)
             --directions V.npy [B,C] --layer L --form F --power P [--boundary W]
             writes --out-obj [B], --out-grad (d sum(obj) / d spectrum or phase), --out-rgb [B,3,H,W]
  bench      renders --icons N icons with --steps, --batch, the REC transform stack (boundary
             penalty times --boundary) and torch.optim.Adam(lr=0.05); prints "icons_per_s <value>"
"""

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
import export as E  # noqa: E402

COLOR = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32)
COLOR_N = COLOR / np.max(np.linalg.norm(COLOR, axis=0))


def rfft2d_freqs(h, w):
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + 2] if w % 2 == 1 else np.fft.fftfreq(w)[: w // 2 + 1]
    return np.sqrt(fx * fx + fy * fy)


def to_rgb(spectrum, h, w):
    freqs = rfft2d_freqs(h, w)
    scale = torch.from_numpy((1.0 / np.maximum(freqs, 1.0 / max(w, h))).astype(np.float32))
    spec = torch.view_as_complex(spectrum.contiguous()) * scale
    out_w = 2 * (spec.shape[-1] - 1)
    img = torch.fft.irfftn(spec, s=(h, out_w), dim=(-2, -1), norm="ortho")[..., :w] / 4.0
    rgb = torch.einsum("ij,bjyx->biyx", torch.from_numpy(COLOR_N), img)
    return torch.sigmoid(rgb)


def blur5(img):
    """lucid `_tf_blur(x, w=5)`: per-channel 5x5 kernel (0.5 on the border, 1 inside), zero-padded
    "SAME" convolution divided by the convolution of ones."""
    k = torch.full((5, 5), 0.5, dtype=img.dtype)
    k[1:-1, 1:-1] = 1.0
    c = img.shape[1]
    kk = k.expand(c, 1, 5, 5).contiguous()
    num = F.conv2d(img, kk, padding=2, groups=c)
    den = F.conv2d(torch.ones_like(img), kk, padding=2, groups=c)
    return num / den


def boundary_penalty(img, w=5, colour=0.5):
    """Per-icon `sum(mask * ((blur(img) - img)^2 + 0.8 (img - C)^2))`, mask = border band of width w."""
    mask = torch.ones_like(img)
    mask[:, :, w:-w, w:-w] = 0
    diffs = (blur5(img) - img) ** 2 + 0.8 * (img - colour) ** 2
    return (diffs * mask).sum(dim=(1, 2, 3))


def maco_rgb(phase, magnitude, h, w, gain=1.0):
    """MACO image: fixed magnitude, trainable phase, per-icon standardisation, lucid colours."""
    z = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
    x = torch.fft.irfft2(z, s=(h, w))
    flat = x.reshape(x.shape[0], -1)
    mean = flat.mean(1).view(-1, 1, 1, 1)
    std = flat.std(1).view(-1, 1, 1, 1)
    x = (x - mean) / (std + 1e-4) * gain
    rgb = torch.einsum("ij,bjyx->biyx", torch.from_numpy(COLOR_N), x)
    return torch.sigmoid(rgb)


def objective(h, v, form, power):
    if form == "notebook":
        dot = (h * v).mean(1)
        cos = dot / (1e-4 + h.norm(dim=1))
    else:
        dot = (h * v).sum(1)
        cos = dot / (1e-4 + h.norm(dim=1)) / (1e-4 + v.norm(dim=1))
    if power == 0:
        return dot
    return dot * torch.clamp(cos, min=0.1) ** power


def centre(layer):
    return layer[:, :, layer.shape[2] // 2, layer.shape[3] // 2]


def load(model_path):
    side = json.load(open(os.path.splitext(model_path)[0] + ".json", encoding="utf-8"))
    model = E.rebuild_eager(side, model_path)
    for p in model.parameters():
        p.requires_grad_(False)
    return side, model


# --- the REC transform stack (lucid semantics: jitter = random crop) ---------------------------
ROT = list(range(-20, 20)) + list(range(-10, 10)) + list(range(-5, 5)) + [0] * 5
REC_SCALES = [0.998 ** n for n in range(20, 40)]


def jitter(t, d):
    oy, ox = random.randint(0, d), random.randint(0, d)
    return t[:, :, oy:t.shape[2] - d + oy, ox:t.shape[3] - d + ox]


def rotate(t, deg):
    if deg == 0:
        return t
    a = math.radians(deg)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]],
                         dtype=t.dtype).expand(t.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(t.shape), align_corners=False)
    return F.grid_sample(t, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rec_transforms(x, size):
    t = F.pad(x - 0.5, (16, 16, 16, 16)) + 0.5
    for d in (4, 4, 8, 8, 8):
        t = jitter(t, d)
    s = random.choice(REC_SCALES)
    t = F.interpolate(t, size=(int(s * t.shape[2]), int(s * t.shape[3])), mode="bilinear",
                      align_corners=False)
    t = rotate(t, random.choice(ROT))
    t = jitter(t, 2)
    dh, dw = size - t.shape[2], size - t.shape[3]
    return F.pad(t, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["objective", "bench"])
    p.add_argument("--model", required=True)
    p.add_argument("--layer", required=True)
    p.add_argument("--form", default="notebook", choices=["notebook", "clean"])
    p.add_argument("--power", type=float, default=4.0)
    p.add_argument("--spectrum")
    p.add_argument("--param", default="lucid", choices=["lucid", "maco"])
    p.add_argument("--phase")
    p.add_argument("--magnitude")
    p.add_argument("--gain", type=float, default=1.0)
    p.add_argument("--where", default="centre", choices=["centre", "all"],
                   help="objective at the centre position or averaged over all positions")
    p.add_argument("--boundary", type=float, default=0.0,
                   help="subtract this multiple of the boundary penalty")
    p.add_argument("--seed-rgb", help="feature accentuation: the seed images [B,3,h,w] in [0,1]")
    p.add_argument("--reference", help="feature accentuation: the seed's objective [B]")
    p.add_argument("--distance-weight", type=float, default=1.0)
    p.add_argument("--directions")
    p.add_argument("--out-obj")
    p.add_argument("--out-grad")
    p.add_argument("--out-rgb")
    p.add_argument("--size", type=int, default=80)
    p.add_argument("--icons", type=int, default=8)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    # Reference numbers in full fp32 also where this runs on a GPU.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if a.threads:
        torch.set_num_threads(a.threads)
    side, model = load(a.model)
    names = [l["name"] for l in side["layers"]]
    if a.layer not in names:
        sys.exit(f"fv_ref: no layer {a.layer!r} in {names}")
    li = names.index(a.layer)

    if a.mode == "objective":
        v = torch.from_numpy(np.load(a.directions).astype(np.float32))
        if a.param == "maco":
            param = torch.from_numpy(np.load(a.phase).astype(np.float32)).requires_grad_(True)
            mag = torch.from_numpy(np.load(a.magnitude).astype(np.float32))
            rgb = maco_rgb(param, mag, param.shape[2], a.size, a.gain)
        else:
            param = torch.from_numpy(np.load(a.spectrum).astype(np.float32)).requires_grad_(True)
            rgb = to_rgb(param, param.shape[2], a.size)
        _, acts = model(rgb)
        if a.where == "all":
            layer = acts[li]
            n, c, hh, ww = layer.shape
            per_pos = [objective(layer[:, :, y, x], v, a.form, a.power)
                       for y in range(hh) for x in range(ww)]
            obj = torch.stack(per_pos, 1).mean(1)
        else:
            obj = objective(centre(acts[li]), v, a.form, a.power)
        if a.boundary > 0:
            obj = obj - a.boundary * boundary_penalty(rgb)
        if a.seed_rgb:
            # Feature accentuation's score: the objective relative to the seed's, minus the
            # weighted mean squared pixel change in units of 0.1^2.
            seed = torch.from_numpy(np.load(a.seed_rgb).astype(np.float32))
            ref = torch.from_numpy(np.load(a.reference).astype(np.float32))
            change = ((rgb - seed) ** 2).mean(dim=(1, 2, 3)) / 0.1 ** 2
            obj = obj / ref - a.distance_weight * change
        (grad,) = torch.autograd.grad(obj.sum(), param)
        np.save(a.out_obj, obj.detach().numpy().astype(np.float32))
        np.save(a.out_grad, grad.reshape(grad.shape[0], -1).numpy().astype(np.float32))
        if a.out_rgb:
            np.save(a.out_rgb, rgb.detach().numpy().astype(np.float32))
        return 0

    # bench: same loop shape as the Rust renderer (random directions, REC stack, Adam 0.05)
    random.seed(0)
    torch.manual_seed(0)
    c = side["layers"][li]["channels"]
    wf = a.size // 2 + 1
    start = time.perf_counter()
    done = 0
    while done < a.icons:
        b = min(a.batch, a.icons - done)
        v = torch.rand(b, c)
        spectrum = (0.01 * torch.randn(b, 3, a.size, wf, 2)).requires_grad_(True)
        opt = torch.optim.Adam([spectrum], lr=0.05)
        for _ in range(a.steps):
            opt.zero_grad()
            img = to_rgb(spectrum, a.size, a.size)
            _, acts = model(rec_transforms(img, a.size))
            obj = objective(centre(acts[li]), v, a.form, a.power)
            if a.boundary > 0:
                obj = obj - a.boundary * boundary_penalty(img)
            loss = -obj.sum()
            loss.backward()
            opt.step()
        done += b
    secs = time.perf_counter() - start
    print(f"icons {done} steps {a.steps} batch {a.batch} seconds {secs:.2f} icons_per_s {done / secs:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
