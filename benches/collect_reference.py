#!/usr/bin/env python3
"""Plain-PyTorch baseline for `atlas collect` (benchmark reference).

Same work as the Rust collector: walk an image folder (recursively), decode with PIL, convert to
RGB, resize the whole image to the model's input size (bilinear, no crop: the paper's collection
preprocessing), batch, run the TorchScript model's `forward_relaxed` once per batch for all
requested layers, pick one random interior position per image and layer (margin 1), and compute the
attribution of that activation vector to every class with the double-backward trick:

    u = zeros(B, K, requires_grad)          s = (logits * u).sum()
    g = grad(s, act, create_graph=True)     t = (g * tangent).sum()    # tangent = h at (y, x) only
    attr = grad(t, u)                        # [B, K] = sum_ch h(y,x) * d logit / d h(y,x)

Writes, per layer, OUT/<layer>/acts.npy [N, C] float32, attrs.npy [N, K] float32, pos.npy [N, 2]
int32 (y, x) and OUT/images.txt (row order). The last line printed is `IMAGES_PER_SEC <float>`
(end to end: decode + forward + attribution, excluding model loading and writing the results).

    python benches/collect_reference.py --model models/efficientnet-lite0.pt \
        --images /work/shared/data/imagenette-val --layers all --batch 32 --limit 256 \
        --out runs/collect-ref --threads 2
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def list_images(root, limit):
    paths = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            if f.lower().endswith(EXTS):
                paths.append(os.path.join(d, f))
    paths.sort()
    return paths[:limit] if limit else paths


def decode(path, H, W):
    with Image.open(path) as im:
        im = im.convert("RGB").resize((W, H), Image.BILINEAR)
        return np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="TorchScript file (sidecar .json beside it)")
    p.add_argument("--images", required=True, help="image folder (recursive)")
    p.add_argument("--layers", default="all", help='comma list of layer names, or "all"')
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--limit", type=int, default=0, help="use only the first N images (sorted)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--margin", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    a = p.parse_args()

    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    side = json.load(open(os.path.splitext(a.model)[0] + ".json", encoding="utf-8"))
    names = [l["name"] for l in side["layers"]]
    want = names if a.layers == "all" else [s.strip() for s in a.layers.split(",") if s.strip()]
    bad = [l for l in want if l not in names]
    if bad:
        sys.exit(f"unknown layers {bad}; the model has {names}")
    idx = [names.index(l) for l in want]
    H, W = side["input_size"]
    K = len(side["classes"])

    model = torch.jit.load(a.model, map_location=dev).eval()
    for prm in model.parameters():
        prm.requires_grad_(False)  # only d logits / d activations is needed
    fwd = model.forward_relaxed if side.get("relaxed_method") == "forward_relaxed" else model.forward

    paths = list_images(a.images, a.limit)
    if not paths:
        sys.exit(f"no images under {a.images}")
    rng = np.random.default_rng(a.seed)
    acts_out = {l: [] for l in want}
    attr_out = {l: [] for l in want}
    pos_out = {l: [] for l in want}

    t0 = time.perf_counter()
    t_decode = 0.0
    for s in range(0, len(paths), a.batch):
        td = time.perf_counter()
        x = torch.from_numpy(np.stack([decode(q, H, W) for q in paths[s:s + a.batch]])).to(dev)
        t_decode += time.perf_counter() - td
        B = x.shape[0]
        x.requires_grad_(True)  # so that the activations are part of an autograd graph
        logits, acts = fwd(x)
        sel = [acts[i] for i in idx]
        u = torch.zeros_like(logits, requires_grad=True)
        grads = torch.autograd.grad((logits * u).sum(), sel, create_graph=True)
        ar = torch.arange(B, device=dev)
        for li, (l, h, g) in enumerate(zip(want, sel, grads)):
            _, C, hh, ww = h.shape
            m = a.margin
            ys = torch.from_numpy(rng.integers(m, hh - m, size=B)).to(dev)
            xs = torch.from_numpy(rng.integers(m, ww - m, size=B)).to(dev)
            vec = h.detach()[ar, :, ys, xs]  # [B, C]
            tangent = torch.zeros_like(h)
            tangent[ar, :, ys, xs] = vec
            t = (g * tangent).sum()
            (attr,) = torch.autograd.grad(t, u, retain_graph=li + 1 < len(want))
            acts_out[l].append(vec.cpu().numpy())
            attr_out[l].append(attr.detach().cpu().numpy())
            pos_out[l].append(torch.stack([ys, xs], 1).cpu().numpy().astype(np.int32))
    elapsed = time.perf_counter() - t0

    os.makedirs(a.out, exist_ok=True)
    for l in want:
        d = os.path.join(a.out, l)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "acts.npy"), np.concatenate(acts_out[l]).astype(np.float32))
        np.save(os.path.join(d, "attrs.npy"), np.concatenate(attr_out[l]).astype(np.float32))
        np.save(os.path.join(d, "pos.npy"), np.concatenate(pos_out[l]))
    with open(os.path.join(a.out, "images.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(paths) + "\n")
    n = len(paths)
    print(f"{n} images, layers {want}, batch {a.batch}, threads {torch.get_num_threads()}: "
          f"{elapsed:.2f} s ({t_decode:.2f} s decoding), K={K}")
    print(f"IMAGES_PER_SEC {n / elapsed:.3f}")


if __name__ == "__main__":
    main()
