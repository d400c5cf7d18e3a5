#!/usr/bin/env python3
"""Top-1 accuracy of an exported atlas model on labelled images (PyTorch reference check).

Labels come from the synset: either the file name starts with `<synset>_` (imagenet-samples) or the
parent folder is named by the synset (imagenette-val/<synset>/*.JPEG). Preprocessing follows the
sidecar's `classify_preprocess` (PIL bilinear resize, centre crop; or squash).

    python tests/reference/eval_top1.py --model models/efficientnet-lite0.pt \
        --images /work/shared/data/imagenet-samples --limit 50
"""

import argparse
import json
import os
import re
import sys
import time

import numpy as np
import torch
from PIL import Image

EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SYN = re.compile(r"^n\d{8}$")


def load(path, pre, size):
    im = Image.open(path).convert("RGB")
    H, W = size
    if pre.get("kind") == "squash":
        im = im.resize((W, H), Image.BILINEAR)
    else:
        r = pre.get("resize", 256)
        w, h = im.size
        s = r / min(w, h)
        nw, nh = max(W, round(w * s)), max(H, round(h * s))
        im = im.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - W) // 2, (nh - H) // 2
        im = im.crop((left, top, left + W, top + H))
    return np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--batch", type=int, default=25)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    side = json.load(open(os.path.splitext(a.model)[0] + ".json"))
    syn2idx = {c["synset"]: i for i, c in enumerate(side["classes"]) if c.get("synset")}
    items = []
    for root, _, files in os.walk(a.images):
        for f in sorted(files):
            if not f.lower().endswith(EXTS):
                continue
            parent = os.path.basename(root)
            syn = parent if SYN.match(parent) else f.split("_")[0]
            if syn in syn2idx:
                items.append((os.path.join(root, f), syn2idx[syn]))
    items.sort()
    if a.limit:
        # spread the subset over the classes
        step = max(1, len(items) // a.limit)
        items = items[::step][: a.limit]
    if not items:
        sys.exit("no labelled images found")
    m = torch.jit.load(a.model, map_location="cpu").eval()
    correct = top5 = 0
    t0 = time.time()
    with torch.no_grad():
        for i in range(0, len(items), a.batch):
            chunk = items[i:i + a.batch]
            x = torch.from_numpy(np.stack([load(pth, side["classify_preprocess"], side["input_size"])
                                           for pth, _ in chunk]))
            logits, _ = m(x)
            y = torch.tensor([c for _, c in chunk])
            correct += (logits.argmax(1) == y).sum().item()
            top5 += (logits.topk(5, 1).indices == y[:, None]).any(1).sum().item()
    n = len(items)
    print(f"{n} images: top-1 {100.0 * correct / n:.1f}%  top-5 {100.0 * top5 / n:.1f}%  "
          f"({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()
