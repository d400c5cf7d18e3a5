#!/usr/bin/env python3
"""Independent PyTorch reference for the Rust attribution test.

For each entry {"image": i, "layer": name, "y": y, "x": x} of --positions it computes

    attr[c] = sum_channels h[:, y, x] * d logit_c / d h[:, y, x]      for every class c

(for a token layer, h is the patch token of grid cell (y, x); for a channels-last one, h[y, x, :])

with forward_relaxed semantics (the max-pools after the layer use the BB-L2 relaxation in the
derivative), and writes --out as float32 [n, K].

Independence from the Rust path: the Rust side runs the TorchScript module and uses the
double-backward trick (reverse mode twice). Here the *eager* module is rebuilt from the sidecar's
`export` field by models/export.py (no TorchScript code is run), the weights are copied from the .pt
file, and the Jacobian-vector product is computed in **forward mode** (torch.autograd.forward_ad):
a forward hook on the layer's tap replaces h by a dual tensor whose tangent is zero except h[:, y, x],
and the tangent of the logits is the attribution row. No backward pass is involved.

Input: either --tensor input.npy ([n,3,H,W] float32 in [0,1], exactly what the Rust test feeds), or
--images a.jpg b.png ... (PIL, RGB, bilinear "squash" resize to the model's input size, /255; use
--save-tensor to keep that tensor for the Rust side).

For the sidecar's linear_head_layer it also prints, per image, the sum of the attributions over all
positions next to logit - bias (they must be equal: the head is global-avg-pool + linear).
--compare-double-backward additionally runs the TorchScript forward_relaxed with the
double-backward trick and prints the largest difference.

    python tests/reference/attribution_ref.py --model models/efficientnet-lite0.pt \
        --tensor input.npy --positions pos.json --out attr.npy
"""

import argparse
import json
import os
import sys
from typing import List

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
import export as E  # noqa: E402


def load_images(paths: List[str], size) -> np.ndarray:
    from PIL import Image
    H, W = size
    out = []
    for p in paths:
        im = Image.open(p).convert("RGB").resize((W, H), Image.BILINEAR)
        out.append(np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0)
    return np.stack(out).astype(np.float32)


def jvp_rows(model, fn, layer_idx: int, x: torch.Tensor, ys: List[int], xs: List[int],
             spec=None) -> torch.Tensor:
    """Forward-mode JVP of the logits for a batch: item b gets tangent h_b at (ys[b], xs[b]).

    `spec` is the layer's sidecar entry: for a token or channels-last layer the position is found
    in the module's own tensor by E.token_index (token prefix + y·w + x), independently of the
    Rust reshape."""
    tap = model.tap_modules()[layer_idx]
    spec = spec or {}

    def hook(_mod, _inp, out):
        t = torch.zeros_like(out)
        for b in range(out.shape[0]):
            at = E.token_index(spec, ys[b], xs[b])
            t[b][at] = out[b][at]
        return fwAD.make_dual(out, t)

    with torch.no_grad(), fwAD.dual_level():
        handle = tap.register_forward_hook(hook)
        try:
            logits, _ = fn(x)
        finally:
            handle.remove()
        tangent = fwAD.unpack_dual(logits).tangent
    if tangent is None:
        raise RuntimeError("no tangent reached the logits (hook not on the forward path?)")
    return tangent.clone()


def double_backward_rows(ts, layer_idx, x, ys, xs, spec) -> torch.Tensor:
    """The Rust path's method, on the TorchScript module (for --compare-double-backward)."""
    x = x.clone().requires_grad_(True)
    logits, acts = ts.forward_relaxed(x)
    h = acts[layer_idx]
    u = torch.zeros_like(logits, requires_grad=True)
    (g,) = torch.autograd.grad((logits * u).sum(), h, create_graph=True)
    tan = torch.zeros_like(h)
    for b in range(h.shape[0]):
        at = E.token_index(spec, ys[b], xs[b])
        tan[b][at] = h[b][at].detach()
    (attr,) = torch.autograd.grad((g * tan).sum(), u)
    return attr.detach()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="models/X.pt (sidecar models/X.json beside it)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tensor", help="input .npy [n,3,H,W] float32 in [0,1]")
    src.add_argument("--images", nargs="+", help="image files (squash-resized with PIL bilinear)")
    p.add_argument("--save-tensor", help="with --images: write the preprocessed tensor here")
    p.add_argument("--positions", required=True, help='JSON [{"image":i,"layer":"name","y":y,"x":x},...]')
    p.add_argument("--out", required=True, help="output .npy float32 [n, K]")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--no-relax", action="store_true", help="use forward instead of forward_relaxed")
    p.add_argument("--no-head-check", action="store_true")
    p.add_argument("--compare-double-backward", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    side_path = os.path.splitext(a.model)[0] + ".json"
    try:
        side = json.load(open(side_path, encoding="utf-8"))
        model = E.rebuild_eager(side, a.model)
    except (OSError, E.ExportError, ValueError) as e:
        print(f"attribution_ref: cannot load model: {e}", file=sys.stderr)
        return 1
    for prm in model.parameters():
        prm.requires_grad_(False)
    relaxed = not a.no_relax and side.get("relaxed_method") == "forward_relaxed"
    fn = model.forward_relaxed if relaxed else model.forward
    names = [l["name"] for l in side["layers"]]

    if a.tensor:
        X = np.load(a.tensor).astype(np.float32)
    else:
        X = load_images(a.images, side["input_size"])
        if a.save_tensor:
            np.save(a.save_tensor, X)
    if X.ndim != 4 or X.shape[1] != 3:
        print(f"attribution_ref: input must be [n,3,H,W], got {X.shape}", file=sys.stderr)
        return 1
    X = torch.from_numpy(X)
    entries = json.load(open(a.positions, encoding="utf-8"))
    K = len(side["classes"])
    out = np.zeros((len(entries), K), dtype=np.float32)

    # group by layer, then batch
    by_layer = {}
    for i, e in enumerate(entries):
        if e["layer"] not in names:
            print(f"attribution_ref: unknown layer {e['layer']!r} (have {names})", file=sys.stderr)
            return 1
        li = names.index(e["layer"])
        spec = side["layers"][li]
        if not (0 <= e["y"] < spec["height"] and 0 <= e["x"] < spec["width"]) or not (0 <= e["image"] < len(X)):
            print(f"attribution_ref: entry {i} out of range: {e}", file=sys.stderr)
            return 1
        by_layer.setdefault(li, []).append(i)
    ts = torch.jit.load(a.model, map_location="cpu") if a.compare_double_backward else None
    worst = 0.0
    for li, idxs in by_layer.items():
        for s in range(0, len(idxs), a.batch):
            chunk = idxs[s:s + a.batch]
            xb = X[[entries[i]["image"] for i in chunk]]
            ys = [entries[i]["y"] for i in chunk]
            xs = [entries[i]["x"] for i in chunk]
            spec = side["layers"][li]
            rows = jvp_rows(model, fn, li, xb, ys, xs, spec)
            out[chunk] = rows.numpy()
            if ts is not None:
                ref = double_backward_rows(ts, li, xb, ys, xs, spec)
                d = ((ref - rows).abs().max() / (rows.abs().max() + 1e-12)).item()
                worst = max(worst, d)
    np.save(a.out, out)
    print(f"wrote {a.out}: {out.shape[0]} rows x {K} classes "
          f"({'forward_relaxed' if relaxed else 'forward'}, forward-mode AD on the eager model)")
    if ts is not None:
        print(f"double-backward (TorchScript) vs forward-mode: max relative diff {worst:.2e}")

    head = side.get("linear_head_layer")
    if head and not a.no_head_check:
        li = names.index(head)
        spec = side["layers"][li]
        hw = [(y, x) for y in range(spec["height"]) for x in range(spec["width"])]
        with torch.no_grad():
            W, b = model.linear_head()
            for img in range(len(X)):
                xi = X[img:img + 1]
                logits, _ = fn(xi)
                total = torch.zeros(K)
                for s in range(0, len(hw), a.batch):
                    part = hw[s:s + a.batch]
                    rows = jvp_rows(model, fn, li, xi.expand(len(part), -1, -1, -1),
                                    [y for y, _ in part], [x for _, x in part], spec)
                    total += rows.sum(0)
                target = logits[0] - b
                err = (total - target).abs().max().item()
                scale = target.abs().max().item()
                print(f"head check image {img} layer {head}: sum of {len(hw)} position attributions vs "
                      f"logit-bias: max abs diff {err:.3e} (max |logit-bias| {scale:.3e}); "
                      f"top class {int(target.argmax())} ({side['classes'][int(target.argmax())]['name']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
