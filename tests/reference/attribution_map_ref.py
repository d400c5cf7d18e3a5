#!/usr/bin/env python3
"""Independent PyTorch reference for the Rust spatial attribution map (spec §9.1 AttrSpatial).

For one input image, a layer and some classes it computes, at every position (y, x) of the layer,

    map_c[y, x] = sum_channels h[:, y, x] * d logit_c / d h[:, y, x]

(pre-softmax logit, forward_relaxed semantics where the model has max-pools) and writes --out as
float32 [len(classes), h*w], row-major over positions (index y*w + x).

Independence from the Rust path: the Rust side runs the TorchScript module through libtorch. Here
the *eager* module is rebuilt from the sidecar's `export` field by models/export.py (no TorchScript
code is run) with the weights copied from the .pt file; a forward hook on the layer's tap keeps the
activation, and torch.autograd.grad of each class logit gives the gradient (one backward per class).

The reverse-mode map is then checked against forward-mode AD (torch.autograd.forward_ad, the
method of attribution_ref.py) at --check-positions positions spread over the grid: at a position,
the forward-mode tangent of the logits for the tangent "h at (y, x), zero elsewhere" is the
attribution of that position to every class, so its entries for the requested classes must equal
the map there. The script fails when they differ by more than 1e-4 relative.

    python tests/reference/attribution_map_ref.py --model models/efficientnet-lite0.pt \
        --tensor input.npy --layer stage4 --classes 22,7 --out map.npy
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
import export as E  # noqa: E402
from attribution_ref import jvp_rows  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="models/X.pt (sidecar models/X.json beside it)")
    p.add_argument("--tensor", required=True, help="input .npy [1,3,H,W] float32 in [0,1]")
    p.add_argument("--layer", required=True)
    p.add_argument("--classes", required=True, help="comma-separated class indices")
    p.add_argument("--out", required=True, help="output .npy float32 [classes, h*w]")
    p.add_argument("--check-positions", type=int, default=8)
    a = p.parse_args()

    side_path = os.path.splitext(a.model)[0] + ".json"
    try:
        side = json.load(open(side_path, encoding="utf-8"))
        model = E.rebuild_eager(side, a.model)
    except (OSError, E.ExportError, ValueError) as e:
        print(f"attribution_map_ref: cannot load model: {e}", file=sys.stderr)
        return 1
    for prm in model.parameters():
        prm.requires_grad_(False)
    names = [l["name"] for l in side["layers"]]
    if a.layer not in names:
        print(f"attribution_map_ref: unknown layer {a.layer!r} (have {names})", file=sys.stderr)
        return 1
    li = names.index(a.layer)
    relaxed = side.get("relaxed_method") == "forward_relaxed"
    fn = model.forward_relaxed if relaxed else model.forward
    classes = [int(c) for c in a.classes.split(",")]
    x = torch.from_numpy(np.load(a.tensor).astype(np.float32))
    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        print(f"attribution_map_ref: input must be [1,3,H,W], got {tuple(x.shape)}", file=sys.stderr)
        return 1

    kept = {}

    def hook(_mod, _inp, out):
        kept["h"] = out

    handle = model.tap_modules()[li].register_forward_hook(hook)
    try:
        logits, _ = fn(x.clone().requires_grad_(True))
    finally:
        handle.remove()
    h = kept["h"]
    maps = []
    for c in classes:
        (g,) = torch.autograd.grad(logits[0, c], h, retain_graph=True)
        maps.append((g * h.detach()).sum(1)[0].flatten())
    out = torch.stack(maps).detach().numpy().astype(np.float32)
    hh, ww = h.shape[2], h.shape[3]

    # Forward-mode cross-check at positions spread over the grid (corners included).
    n = max(1, min(a.check_positions, hh * ww))
    picks = sorted({round(i * (hh * ww - 1) / max(1, n - 1)) for i in range(n)})
    ys = [r // ww for r in picks]
    xs = [r % ww for r in picks]
    rows = jvp_rows(model, fn, li, x.expand(len(picks), -1, -1, -1), ys, xs).numpy()
    for ci, c in enumerate(classes):
        fwd = rows[:, c]
        rev = out[ci, picks]
        err = np.abs(fwd - rev).max() / max(np.abs(out[ci]).max(), 1e-12)
        if err > 1e-4:
            print(f"attribution_map_ref: reverse vs forward mode differ for class {c}: {err:.2e}",
                  file=sys.stderr)
            return 1
    np.save(a.out, out)
    print(f"wrote {a.out}: {len(classes)} maps of {hh}x{ww} ({a.layer}); forward-mode agrees at "
          f"{len(picks)} positions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
