#!/usr/bin/env python3
"""scikit-learn's t-SNE with the spec's settings (§2.3), for tests/it/tsne_quality.rs.

    tsne_ref.py X.npy OUT_DIR --dims 2,1 [--seed 0]

Writes OUT_DIR/sklearn_{dims}d.npy (float32, n×dims) and prints one line per run with its time.
"""
import argparse
import os
import time

import numpy as np
from sklearn.manifold import TSNE


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--dims", default="2,1")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    x = np.load(a.data).astype(np.float32)
    for dims in [int(v) for v in a.dims.split(",")]:
        t0 = time.perf_counter()
        y = TSNE(
            n_components=dims,
            metric="cosine",
            learning_rate=10,
            perplexity=50,
            random_state=a.seed,
        ).fit_transform(x)
        np.save(os.path.join(a.out, f"sklearn_{dims}d.npy"), y.astype(np.float32))
        print(f"sklearn {dims}-D t-SNE: {time.perf_counter() - t0:.2f} s", flush=True)


if __name__ == "__main__":
    main()
