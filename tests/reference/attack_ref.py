#!/usr/bin/env python3
"""Independent PIL + PyTorch reference for the Rust patch attack (spec §8.2, NB-ADV composite_img).

Two commands:

    resize     --image P --sizes 5x4,300x200 --out R.npy
        Pillow's Image.resize((w, h), Image.LANCZOS) of P for every size; R.npy is float32
        [len(sizes), max(w*h*3)] holding each result's bytes (h, w, RGB order), zero-padded.

    composite  --model M.pt --background B --patch P --settings 0.4:top-left,0.07:bottom-right
               --pixels X.npy --probs Y.npy
        As NB-ADV: background resized to side×side with LANCZOS (side from the sidecar), patch
        resized to w = int(ratio*side) square with LANCZOS, pasted opaquely with its top-left at
        (int(px*(side-w)), int(py*(side-w))); X.npy float32 [N, side*side*3] holds the composite
        bytes. Each composite is classified by the EAGER model rebuilt from the sidecar's export
        field (models/export.py, weights copied from the .pt; no TorchScript code runs) on
        ToTensor pixels in [0, 1], then softmax; Y.npy float32 [N, K].

Nothing here imports or calls the Rust code: resizing and pasting are Pillow's, the network is
the eager PyTorch module.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
import export as E  # noqa: E402

CORNERS = {"top-left": (0, 0), "top-right": (1, 0), "bottom-left": (0, 1), "bottom-right": (1, 1)}


def composite_img(bg: Image.Image, patch: Image.Image, ratio: float, px: int, py: int, side: int):
    """NB-ADV composite_img on an already side×side background."""
    out = bg.copy()
    w = int(ratio * side)
    if w == 0:
        return out
    small = patch.resize((w, w), Image.LANCZOS)
    out.paste(small, (int(px * (side - w)), int(py * (side - w))))
    return out


def cmd_resize(a) -> int:
    img = Image.open(a.image).convert("RGB")
    rows = []
    for s in a.sizes.split(","):
        w, h = (int(v) for v in s.split("x"))
        rows.append(np.frombuffer(img.resize((w, h), Image.LANCZOS).tobytes(), dtype=np.uint8))
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width), dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    np.save(a.out, out)
    return 0


def cmd_composite(a) -> int:
    side_path = os.path.splitext(a.model)[0] + ".json"
    try:
        sidecar = json.load(open(side_path, encoding="utf-8"))
        model = E.rebuild_eager(sidecar, a.model)
    except (OSError, E.ExportError, ValueError) as e:
        print(f"attack_ref: cannot load model: {e}", file=sys.stderr)
        return 1
    h, w = sidecar["input_size"]
    if h != w:
        print(f"attack_ref: model input {w}x{h} is not square", file=sys.stderr)
        return 1
    side = w
    bg = Image.open(a.background).convert("RGB").resize((side, side), Image.LANCZOS)
    patch = Image.open(a.patch).convert("RGB")
    composites = []
    for item in a.settings.split(","):
        ratio, corner = item.split(":")
        px, py = CORNERS[corner]
        composites.append(composite_img(bg, patch, float(ratio), px, py, side))
    pixels = np.stack([np.asarray(c, dtype=np.uint8) for c in composites])  # [N, side, side, 3]
    x = torch.from_numpy(pixels.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        logits, _ = model(x)
        probs = torch.softmax(logits.float(), dim=-1).numpy().astype(np.float32)
    np.save(a.pixels, pixels.reshape(len(composites), -1).astype(np.float32))
    np.save(a.probs, probs)
    print(f"attack_ref: {len(composites)} composites of {side}x{side}, {probs.shape[1]} classes")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("resize")
    r.add_argument("--image", required=True)
    r.add_argument("--sizes", required=True, help="comma-separated WxH")
    r.add_argument("--out", required=True)
    c = sub.add_parser("composite")
    c.add_argument("--model", required=True, help="models/X.pt (sidecar models/X.json beside it)")
    c.add_argument("--background", required=True)
    c.add_argument("--patch", required=True)
    c.add_argument("--settings", required=True, help="comma-separated ratio:corner")
    c.add_argument("--pixels", required=True)
    c.add_argument("--probs", required=True)
    a = p.parse_args()
    return cmd_resize(a) if a.cmd == "resize" else cmd_composite(a)


if __name__ == "__main__":
    sys.exit(main())
