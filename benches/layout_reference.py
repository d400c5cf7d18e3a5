#!/usr/bin/env python3
"""Lay out an .npy matrix with umap-learn and score it like tests/it/layout_quality.rs.

umap-learn is not a project dependency; install it into the venv for a comparison:
    .venv/bin/pip install umap-learn

Usage:
    ATLAS_LAYOUT_DUMP=/tmp/lq cargo test --release --test it layout_quality::   # writes X, labels, ours
    .venv/bin/python benches/layout_reference.py /tmp/lq/X.npy --labels /tmp/lq/labels.npy \
        --ours /tmp/lq/ours.npy [--n-neighbors 50 --min-dist 0.05 --metric cosine --seed 7]

Prints wall time of umap-learn's fit (after a small warm-up run so numba's JIT compile is not
counted), trustworthiness (sklearn, input metric = layout metric, k = 15) and 2-D neighbour label
agreement (fraction of each point's 15 nearest 2-D neighbours with its label, averaged), for
umap-learn and, with --ours, for a given layout of the same rows.
"""
import argparse
import time

import numpy as np


def agreement(y, labels, k):
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k).fit(y).kneighbors(return_distance=False)
    return float((labels[nn] == labels[:, None]).mean())


def score(name, x, y, labels, metric, k, secs=None, max_trust_n=30000):
    from sklearn.manifold import trustworthiness

    if len(x) <= max_trust_n:
        t = trustworthiness(x, y, n_neighbors=k, metric=metric)
        line = f"{name:>10}: trustworthiness {t:.4f}"
    else:  # sklearn builds the full n×n distance matrix
        line = f"{name:>10}: trustworthiness skipped (n > {max_trust_n})"
    if labels is not None:
        line += f", agreement {agreement(y, labels, k):.4f}"
    if secs is not None:
        line = f"{name:>10}: time {secs:.2f} s, " + line.split(": ", 1)[1]
    print(line, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="[N, D] .npy matrix")
    ap.add_argument("--labels", help="[N] or [N, 1] .npy labels")
    ap.add_argument("--ours", help="[N, 2] .npy layout to score alongside")
    ap.add_argument("--n-neighbors", type=int, default=50)
    ap.add_argument("--min-dist", type=float, default=0.05)
    ap.add_argument("--metric", default="cosine", choices=["cosine", "euclidean"])
    ap.add_argument("--n-epochs", type=int, default=None)
    ap.add_argument("--init", default="spectral", help="umap-learn init: spectral (default), pca, random")
    ap.add_argument("--seed", type=int, default=None,
                    help="random_state (makes umap-learn single-threaded; default: parallel)")
    ap.add_argument("--k", type=int, default=15, help="neighbours for the scores")
    ap.add_argument("--no-score", action="store_true", help="only time the layout")
    a = ap.parse_args()

    import umap

    x = np.load(a.data).astype(np.float32)
    labels = None
    if a.labels:
        labels = np.load(a.labels).reshape(-1).astype(np.int64)
    kw = dict(n_neighbors=a.n_neighbors, min_dist=a.min_dist, metric=a.metric,
              n_epochs=a.n_epochs, init=a.init, random_state=a.seed)
    # Warm up numba's JIT on a small slice so the timing below is the algorithm's.
    umap.UMAP(**{**kw, "n_epochs": 10}).fit_transform(x[: min(len(x), 500)])
    t0 = time.perf_counter()
    y = umap.UMAP(**kw).fit_transform(x)
    secs = time.perf_counter() - t0
    print(f"n={len(x)} d={x.shape[1]} n_neighbors={a.n_neighbors} min_dist={a.min_dist} "
          f"metric={a.metric} init={a.init}", flush=True)
    if a.no_score:
        print(f"umap-learn: time {secs:.2f} s")
        return
    score("umap-learn", x, y, labels, a.metric, a.k, secs)
    if a.ours:
        score("ours", x, np.load(a.ours).astype(np.float32), labels, a.metric, a.k)


if __name__ == "__main__":
    main()
