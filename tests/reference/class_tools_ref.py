"""Independent reference for the class tools (numpy only): the class-atlas filters (spec §6) and
the comparison's sample set and x axis (spec §7), read from a run folder's attr.npy.

    class_tools_ref.py --run RUN --layer L --class C [--b B] --filter winner|magnitude|both
                       --n N [--keep-duplicates] [--percentile 99] --out OUT.json

With --b: the comparison of classes C (A) and B: {"rows", "x", "scale"}; without: the class atlas
of C: {"rows", "winner_count", "magnitude_count"}.
"""
import argparse
import json
import os

import numpy as np


def layer_dir(run, layer):
    manifest = json.load(open(os.path.join(run, "run.json")))
    for entry in manifest["layers"]:
        if entry["name"] == layer:
            return os.path.join(run, entry["dir"])
    raise SystemExit(f"no layer {layer}")


def winner(attr, c):
    # np.argmax takes the first maximum; rows ascending.
    return np.nonzero(np.argmax(attr, axis=1) == c)[0].tolist()


def magnitude(attr, c, n):
    # Largest first, ties by lower row (stable sort of the negated column), positive only.
    order = np.argsort(-attr[:, c], kind="stable")[:n]
    return [int(i) for i in order if attr[i, c] > 0]


def class_rows(attr, c, flt, n, keep_dup):
    if flt == "winner":
        return winner(attr, c)
    if flt == "magnitude":
        rows = magnitude(attr, c, n)
        return rows if keep_dup else sorted(rows)
    rows = magnitude(attr, c, n) + winner(attr, c)  # NB-CLS: concatenated
    return rows if keep_dup else sorted(set(rows))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--layer", required=True)
    ap.add_argument("--class", dest="cls", type=int, required=True)
    ap.add_argument("--b", type=int)
    ap.add_argument("--filter", default="both")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--keep-duplicates", action="store_true")
    ap.add_argument("--percentile", type=float, default=99.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    attr = np.load(os.path.join(layer_dir(args.run, args.layer), "attr.npy"))
    assert attr.dtype == np.float32
    if args.b is None:
        rows = class_rows(attr, args.cls, args.filter, args.n, args.keep_duplicates)
        out = {
            "rows": rows,
            "winner_count": len(winner(attr, args.cls)),
            "magnitude_count": len(magnitude(attr, args.cls, args.n)),
        }
    else:
        a, b = args.cls, args.b
        rows = class_rows(attr, a, args.filter, args.n, args.keep_duplicates) + class_rows(
            attr, b, args.filter, args.n, args.keep_duplicates
        )
        if not args.keep_duplicates:
            rows = sorted(set(rows))
        idx = np.array(rows, dtype=np.int64)
        d = attr[idx, b] - attr[idx, a]  # float32, as the notebook
        scale = float(np.percentile(np.abs(d).astype(np.float64), args.percentile))
        x = np.clip(d.astype(np.float64) / scale, -1.0, 1.0) if scale > 0 else np.zeros(len(d))
        out = {"rows": rows, "x": x.tolist(), "scale": scale}
    json.dump(out, open(args.out, "w"))


if __name__ == "__main__":
    main()
