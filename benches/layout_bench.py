#!/usr/bin/env python3
"""Layout benchmark and quality comparison: `atlas layout` (Rust UMAP) against umap-learn.

Two sub-commands:

  bench  Generate a fixed-seed labelled mixture (default 100,000 x 512, see `mixture`), lay it out
         with umap-learn and with `target/release/atlas layout` (same parameters: n_neighbors 50,
         min_dist 0.05, cosine; umap-learn without random_state so that it runs multi-threaded),
         and print both times, the ratio and both tools' quality scores.
  score  Lay out a given [N, D] .npy with umap-learn and compare it with a given layout of ours
         (used by tests/it/real_data.rs on real activations); prints one JSON line.

What is timed (bench):
  * ours:       wall clock of the whole `atlas layout` command: process start, reading the .npy,
                kNN, graph, init, SGD, writing the result.
  * umap-learn: wall clock of `UMAP(...).fit_transform(x)` in a fresh Python process, AFTER a
                warm-up fit on 1,000 rows in the same process, so numba's JIT compilation is NOT
                included (it is printed separately, with the import time). The ratio is
                umap-learn's warm fit time / our whole command, which favours umap-learn.
Both run one after the other on the same machine; on a shared machine the numbers are noisy.

Quality (both tools, same rows):
  * trustworthiness (sklearn.manifold.trustworthiness, k = 15, input metric cosine) on a fixed
    random subsample of min(N, 5,000) rows: sklearn builds the full distance matrix, so the
    score is computed among the subsample's rows (input and layout restricted to them);
  * neighbour label agreement: for each subsample row, the fraction of its 15 nearest 2-D
    neighbours in the WHOLE layout (all N rows, itself excluded) that share its label,
    averaged over the subsample.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

K_EVAL = 15
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mixture(n, d, seed=2019, groups=8, per_group=5, latent=6):
    """Activation-like labelled data: `groups` well separated super-clusters, each with
    `per_group` overlapping sub-clusters (the labels), each sub-cluster a noisy `latent`-dim linear
    manifold; ReLU'd so that rows are non-negative and sparse-ish like ReLU activations. Unequal
    cluster sizes. Returns (float32 [n, d], int labels [n])."""
    rng = np.random.default_rng(seed)
    k = groups * per_group
    sizes = rng.dirichlet(np.full(k, 4.0))
    labels = np.sort(rng.choice(k, size=n, p=sizes))
    g_centres = rng.normal(0.0, 1.0, (groups, d))
    centres = np.repeat(g_centres, per_group, axis=0) + rng.normal(0.0, 0.45, (k, d))
    bases = rng.normal(0.0, 0.35, (k, latent, d))
    x = np.empty((n, d), np.float32)
    for c in range(k):
        rows = np.flatnonzero(labels == c)
        z = rng.normal(0.0, 1.0, (len(rows), latent))
        x[rows] = centres[c] + z @ bases[c] + rng.normal(0.0, 0.25, (len(rows), d))
    np.maximum(x, 0.0, out=x)
    perm = rng.permutation(n)  # no ordering the tools could exploit
    return x[perm], labels[perm]


def scores(x, y, labels, sub):
    """(trustworthiness on the subsample, neighbour label agreement of the subsample rows)."""
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import NearestNeighbors

    t = trustworthiness(x[sub], y[sub], n_neighbors=K_EVAL, metric="cosine")
    nn = NearestNeighbors(n_neighbors=K_EVAL + 1).fit(y)
    idx = nn.kneighbors(y[sub], return_distance=False)
    # Drop the row itself (normally first; with coincident points it may be anywhere or absent).
    idx = np.array([r[r != i][:K_EVAL] for r, i in zip(idx, sub)])
    agree = (labels[idx] == labels[sub][:, None]).mean()
    return float(t), float(agree)


UMAP_LEARN = r"""
import sys, time, json
t0 = time.perf_counter()
import numpy as np, umap
t1 = time.perf_counter()
x = np.load(sys.argv[1]).astype(np.float32)
seed = None if sys.argv[4] == "none" else int(sys.argv[4])
kw = dict(n_neighbors=int(sys.argv[3]), min_dist=0.05, metric="cosine", random_state=seed)
warm = 0.0
if sys.argv[5] == "warm":
    umap.UMAP(**kw).fit_transform(x[np.random.default_rng(0).permutation(len(x))[:1000]])
    warm = time.perf_counter() - t1
t2 = time.perf_counter()
y = umap.UMAP(**kw).fit_transform(x)
t3 = time.perf_counter()
np.save(sys.argv[2], y.astype(np.float32))
print(json.dumps({"import": t1 - t0, "warmup": warm, "fit": t3 - t2}))
"""


def run_umap_learn(xpath, ypath, n_neighbors, seed, warm):
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", UMAP_LEARN, xpath, ypath, str(n_neighbors), seed, warm],
        check=True, capture_output=True, text=True)
    total = time.perf_counter() - start
    info = json.loads(out.stdout.strip().splitlines()[-1])
    info["total"] = total
    return info


def run_ours(atlas, xpath, ypath, n_neighbors, seed):
    start = time.perf_counter()
    subprocess.run([atlas, "layout", "--input", xpath, "--output", ypath,
                    "--neighbors", str(n_neighbors), "--min-dist", "0.05", "--seed", str(seed)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench(a):
    work = tempfile.mkdtemp(prefix="atlas-layout-bench-")
    x, labels = mixture(a.n, a.d)
    xpath = os.path.join(work, "x.npy")
    np.save(xpath, x)
    sub = np.sort(np.random.default_rng(1).choice(a.n, size=min(a.n, a.subsample), replace=False))
    print(f"layout benchmark: {a.n} x {a.d} mixture ({labels.max() + 1} labels), n_neighbors "
          f"{a.n_neighbors}, min_dist 0.05, cosine, {os.cpu_count()} cores; scores on {len(sub)} "
          f"rows, k = {K_EVAL}", flush=True)
    rows = []
    if not a.skip_umap_learn:
        ul = run_umap_learn(xpath, os.path.join(work, "ul.npy"), a.n_neighbors, "none", "warm")
        t, g = scores(x, np.load(os.path.join(work, "ul.npy")), labels, sub)
        rows.append(("umap-learn 0.5.12", ul["fit"], t, g))
        print(f"  umap-learn: import {ul['import']:.1f} s, JIT warm-up fit on 1,000 rows "
              f"{ul['warmup']:.1f} s (not counted), fit {ul['fit']:.1f} s, whole command "
              f"{ul['total']:.1f} s", flush=True)
    secs = run_ours(a.atlas, xpath, os.path.join(work, "ours.npy"), a.n_neighbors, a.seed)
    t, g = scores(x, np.load(os.path.join(work, "ours.npy")), labels, sub)
    rows.append(("atlas layout", secs, t, g))
    print(f"{'tool':<20} {'time s':>8} {'trust@15':>9} {'agree@15':>9}")
    for name, s, t, g in rows:
        print(f"{name:<20} {s:>8.1f} {t:>9.4f} {g:>9.4f}")
    if len(rows) == 2:
        (_, su, tu, gu), (_, so, to, go) = rows
        print(f"speed-up (umap-learn warm fit / atlas whole command): {su / so:.2f}x; "
              f"trust diff {to - tu:+.4f}, agreement diff {go - gu:+.4f}")
    for f in os.listdir(work):
        os.remove(os.path.join(work, f))
    os.rmdir(work)


def score(a):
    x = np.load(a.data).astype(np.float32)
    labels = np.load(a.labels).reshape(-1)
    ours = np.load(a.ours).astype(np.float32)
    with tempfile.TemporaryDirectory() as work:
        ypath = os.path.join(work, "ul.npy")
        info = run_umap_learn(a.data, ypath, a.n_neighbors, str(a.seed), "cold")
        ul = np.load(ypath)
    sub = np.sort(np.random.default_rng(1).choice(len(x), size=min(len(x), a.subsample), replace=False))
    tu, gu = scores(x, ul, labels, sub)
    to, go = scores(x, ours, labels, sub)
    print(json.dumps({"n": len(x), "d": x.shape[1], "umap_learn": {"trust": tu, "agree": gu,
                      "fit_s": info["fit"]}, "ours": {"trust": to, "agree": go}}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sp = ap.add_subparsers(dest="cmd", required=True)
    b = sp.add_parser("bench")
    b.add_argument("--n", type=int, default=100_000)
    b.add_argument("--d", type=int, default=512)
    b.add_argument("--n-neighbors", type=int, default=50)
    b.add_argument("--subsample", type=int, default=5000)
    b.add_argument("--seed", type=int, default=0, help="our layout's seed")
    b.add_argument("--atlas", default=os.path.join(ROOT, "target/release/atlas"))
    b.add_argument("--skip-umap-learn", action="store_true")
    s = sp.add_parser("score")
    s.add_argument("--data", required=True)
    s.add_argument("--labels", required=True)
    s.add_argument("--ours", required=True)
    s.add_argument("--n-neighbors", type=int, default=50)
    s.add_argument("--seed", type=int, default=0, help="umap-learn random_state (reproducible)")
    s.add_argument("--subsample", type=int, default=5000)
    a = ap.parse_args()
    bench(a) if a.cmd == "bench" else score(a)


if __name__ == "__main__":
    main()
