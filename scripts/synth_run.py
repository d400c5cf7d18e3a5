#!/usr/bin/env python3
"""Writes a synthetic collection run of N rows in exactly the format `atlas collect` writes
(see src/collect/run_folder.rs), for measuring `atlas build` and the app at paper scale without
collecting a million images. Called by `scripts/synth-run`.

What is in it:
  * layer `head` (1280 channels, the model's real head layer, so synthetic icons can be rendered)
    and layer `mixed512` (512 channels, not a layer of the model: layout and grids only);
  * every row is one "image" (samples_per_image 1, as the paper's million images): row i of both
    layers comes from image i; the rows are a labelled mixture (benches/layout_bench.py's
    `mixture`: 8 super-clusters x 5 sub-clusters, ReLU'd), drawn per layer with the same labels;
  * image i's path is one of the bundled images (assets/images), chosen by its mixture label, so
    the exemplar icons of a cluster show the same photo; positions (y, x) are random interior
    positions of the 7x7 layer grid;
  * attributions `[N, 1000]`: per label a fixed sparse class profile, scaled per row;
  * `synth-labels.npy` (int32 [N], the mixture labels) beside run.json, for scoring the layout.
    No atlas tool reads it.
Activations are written as f16 (`atlas collect --f16`), attributions as f32, in row chunks, so
the script's memory stays small at any N.
"""
import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benches"))

CHUNK = 65536
LAYER_GRID = 7  # EfficientNet-Lite0's head (and stage6/7) grid
MARGIN = 1


class Mixture:
    """benches/layout_bench.py's `mixture` (same construction and defaults), drawn chunk by chunk:
    `groups` separated super-clusters, each with `per_group` overlapping sub-clusters (the
    labels), each a noisy `latent`-dim linear manifold, ReLU'd."""

    def __init__(self, d, seed, groups=8, per_group=5, latent=6):
        rng = np.random.default_rng(seed)
        self.k = groups * per_group
        g_centres = rng.normal(0.0, 1.0, (groups, d))
        self.centres = np.repeat(g_centres, per_group, axis=0) + rng.normal(0.0, 0.45, (self.k, d))
        self.bases = rng.normal(0.0, 0.35, (self.k, latent, d))
        self.latent = latent
        self.d = d

    def rows(self, labels, rng):
        x = np.empty((len(labels), self.d), np.float32)
        for c in np.unique(labels):
            rows = np.flatnonzero(labels == c)
            z = rng.normal(0.0, 1.0, (len(rows), self.latent))
            x[rows] = self.centres[c] + z @ self.bases[c] + rng.normal(0.0, 0.25, (len(rows), self.d))
        np.maximum(x, 0.0, out=x)
        return x


def npy_header(descr, rows, cols):
    """NumPy format 1.0 header of a C-order [rows, cols] array, padded to 64 bytes (as
    src/store/npy.rs writes it)."""
    d = "{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }" % (descr, rows, cols)
    unpadded = 10 + len(d) + 1
    pad = (64 - unpadded % 64) % 64
    return b"\x93NUMPY\x01\x00" + (len(d) + pad + 1).to_bytes(2, "little") + d.encode() + b" " * pad + b"\n"


def bundled_images():
    base = os.path.join(ROOT, "assets", "images")
    out = []
    for folder in sorted(os.listdir(base)):
        for f in sorted(os.listdir(os.path.join(base, folder))):
            out.append((os.path.join(base, folder, f), "" if folder == "unlabelled" else folder))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=2019)
    args = ap.parse_args()
    n = args.rows
    model = os.path.join(ROOT, "models", "efficientnet-lite0.pt")
    sidecar = json.load(open(os.path.join(ROOT, "models", "efficientnet-lite0.json")))
    class_names = [c["name"] for c in sidecar["classes"]]
    synset_index = {c["synset"]: i for i, c in enumerate(sidecar["classes"])}
    k_classes = len(class_names)
    images = bundled_images()
    layers = [("head", 1280), ("mixed512", 512)]

    rng = np.random.default_rng(args.seed)
    mixtures = [Mixture(d, args.seed + 1 + i) for i, (_, d) in enumerate(layers)]
    k = mixtures[0].k
    sizes = rng.dirichlet(np.full(k, 4.0))
    labels = rng.choice(k, size=n, p=sizes).astype(np.int32)
    # Per label: 3 classes with positive attribution, the rest small noise-free zeros.
    profiles = np.zeros((k, k_classes), np.float32)
    for c in range(k):
        top = rng.choice(k_classes, 3, replace=False)
        profiles[c, top] = [3.0, 2.0, 1.0]
    image_of_label = np.arange(k) % len(images)
    pos = rng.integers(MARGIN, LAYER_GRID - MARGIN, size=(n, 2))

    os.makedirs(args.out, exist_ok=True)
    np.save(os.path.join(args.out, "synth-labels.npy"), labels)
    for li, (name, d) in enumerate(layers):
        ldir = os.path.join(args.out, "layers", name)
        os.makedirs(ldir, exist_ok=True)
        lrng = np.random.default_rng(args.seed + 100 + li)
        with open(os.path.join(ldir, "acts.npy"), "wb") as fa, open(os.path.join(ldir, "attr.npy"), "wb") as fr:
            fa.write(npy_header("<f2", n, d))
            fr.write(npy_header("<f4", n, k_classes))
            for lo in range(0, n, CHUNK):
                lab = labels[lo:lo + CHUNK]
                fa.write(mixtures[li].rows(lab, lrng).astype("<f2").tobytes())
                scale = lrng.uniform(0.5, 1.5, (len(lab), 1)).astype(np.float32)
                fr.write((profiles[lab] * scale).astype("<f4").tobytes())

    def csv_field(s):
        return '"' + s.replace('"', '""') + '"' if any(ch in s for ch in ',"\n') else s

    img_paths = [images[image_of_label[c]][0] for c in range(k)]
    img_labels = [images[image_of_label[c]][1] for c in range(k)]
    img_class = [str(synset_index[l]) if l in synset_index else "" for l in img_labels]
    with open(os.path.join(args.out, "images.csv"), "w") as f:
        f.write("index,path,label,class_index\n")
        for lo in range(0, n, CHUNK):
            f.write("".join(
                f"{i},{csv_field(img_paths[c])},{img_labels[c]},{img_class[c]}\n"
                for i, c in zip(range(lo, lo + CHUNK), labels[lo:lo + CHUNK])))
    with open(os.path.join(args.out, "provenance.csv"), "w") as f:
        f.write("row,layer,image_index,path,label,y,x,draw\n")
        for name, _ in layers:
            for lo in range(0, n, CHUNK):
                f.write("".join(
                    f"{i},{name},{i},{csv_field(img_paths[c])},{img_labels[c]},{y},{x},0\n"
                    for i, c, (y, x) in zip(range(lo, lo + CHUNK), labels[lo:lo + CHUNK], pos[lo:lo + CHUNK])))
    # Top-5 per image: the label's profile classes, then two fixed fillers.
    top5 = []
    for c in range(k):
        order = np.argsort(-profiles[c], kind="stable")[:5]
        probs = [0.6, 0.2, 0.1, 0.05, 0.05]
        top5.append(",".join(f"{csv_field(class_names[j])},{p:.6f}" for j, p in zip(order, probs)))
    with open(os.path.join(args.out, "predictions.csv"), "w") as f:
        f.write("image_index,path,label,top1,p1,top2,p2,top3,p3,top4,p4,top5,p5\n")
        for lo in range(0, n, CHUNK):
            f.write("".join(
                f"{i},{csv_field(img_paths[c])},{img_labels[c]},{top5[c]}\n"
                for i, c in zip(range(lo, lo + CHUNK), labels[lo:lo + CHUNK])))
    for name in ("problems.csv", "scan-problems.csv"):
        with open(os.path.join(args.out, name), "w") as f:
            f.write("path,reason\n")
    manifest = {
        "format": "activation-atlas-run/2",
        "settings": {
            "model_file": model,
            "model_name": sidecar.get("name", "EfficientNet-Lite0"),
            "model_bytes": os.path.getsize(model),
            "images_root": os.path.join(ROOT, "assets", "images"),
            "layers": [name for name, _ in layers],
            "samples_per_image": 1,
            "margin": MARGIN,
            "seed": args.seed,
            "batch_size": 32,
            "chunk_images": 512,
            "acts_dtype": "f16",
            "preprocess": "squash",
        },
        "num_images": n,
        "num_classes": k_classes,
        "class_names": class_names,
        "status": "complete",
        "layers": [{"name": name, "dir": f"layers/{name}", "channels": d, "rows": n} for name, d in layers],
        "images_done": n,
        "problems": 0,
    }
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    print(f"wrote {args.out}: {n} rows, layers {[name for name, _ in layers]}, {k} labels")


if __name__ == "__main__":
    main()
