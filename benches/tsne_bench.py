#!/usr/bin/env python3
"""t-SNE benchmark: scikit-learn's TSNE against `atlas layout --method tsne` on the same data.

Both run the spec's settings (§2.3: metric="cosine", learning_rate=10, perplexity=50, sklearn's
other defaults; the Rust defaults are the same) in 2-D and 1-D on a labelled synthetic mixture
(clusters in --d dimensions, each a noisy 3-D linear manifold, fixed seed). Prints the wall time
of each (sklearn: the fit; atlas: the whole command, start-up and .npy I/O included), the
ratio, and for both layouts the trustworthiness (sklearn's, cosine in the input space, k = 15),
the neighbour label agreement (fraction of each point's 15 nearest embedded neighbours with its
label) and the 1-NN label agreement.

Usage (from the repository root, after `cargo build --release`):
    .venv/bin/python benches/tsne_bench.py [--n 4000 --d 128 --dims 2,1 --atlas target/release/atlas]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


def mixture(n, d, clusters, seed, basis=0.5, noise=2.5):
    """Cluster centres ~ N(0, 1); each cluster a 3-D linear manifold (basis ~ N(0, basis²))
    plus isotropic noise ~ N(0, noise²): with the defaults the clusters touch, so neither tool
    gets every neighbour right (tests/it/tsne_quality.rs does the same in 64-D, where 1.75 suffices)."""
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.integers(0, clusters, n))
    centres = rng.normal(size=(clusters, d))
    bases = rng.normal(scale=basis, size=(clusters, 3, d))
    z = rng.normal(size=(n, 3))
    x = centres[labels] + np.einsum("nk,nkd->nd", z, bases[labels])
    x += noise * rng.normal(size=(n, d))
    return x.astype(np.float32), labels


def agreement(y, labels, k):
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k).fit(y).kneighbors(return_distance=False)
    return float((labels[nn] == labels[:, None]).mean())


def scores(x, y, labels, k):
    from sklearn.manifold import trustworthiness

    return (
        trustworthiness(x, y, n_neighbors=k, metric="cosine"),
        agreement(y, labels, k),
        agreement(y, labels, 1),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--clusters", type=int, default=10)
    ap.add_argument("--noise", type=float, default=2.5, help="isotropic noise per dimension")
    ap.add_argument("--dims", default="2,1", help="embedding dimensions to run, comma separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=15, help="neighbours for the scores")
    ap.add_argument("--atlas", default="target/release/atlas", help="the atlas binary")
    ap.add_argument("--skip-sklearn", action="store_true", help="time and score atlas only")
    ap.add_argument("--sklearn-threads", type=int, default=None,
                    help="OpenMP threads for sklearn (default: its own, all cores); on a busy "
                         "machine one thread can be much faster than two spinning ones")
    a = ap.parse_args()

    if a.sklearn_threads:
        os.environ["OMP_NUM_THREADS"] = str(a.sklearn_threads)  # before sklearn loads OpenMP
    from sklearn.manifold import TSNE
    import sklearn

    x, labels = mixture(a.n, a.d, a.clusters, a.seed, noise=a.noise)
    work = tempfile.mkdtemp(prefix="tsne-bench-")
    np.save(os.path.join(work, "X.npy"), x)
    print(
        f"t-SNE benchmark: n={a.n} d={a.d} clusters={a.clusters} noise={a.noise}, cosine, perplexity 50, lr 10, "
        f"1000 iterations; sklearn {sklearn.__version__} "
        f"({a.sklearn_threads or 'default'} threads), {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} (timings on a busy machine are noisy)",
        flush=True,
    )
    print(f"{'':4} {'tool':>8} {'time s':>8} {'trust':>7} {'agree15':>8} {'agree1':>7}", flush=True)
    for dims in [int(v) for v in a.dims.split(",")]:
        rows = {}
        if not a.skip_sklearn:
            t0 = time.perf_counter()
            ys = TSNE(
                n_components=dims,
                metric="cosine",
                learning_rate=10,
                perplexity=50,
                random_state=a.seed,
            ).fit_transform(x)
            rows["sklearn"] = (time.perf_counter() - t0, ys)
        out = os.path.join(work, f"ours{dims}.npy")
        t0 = time.perf_counter()
        r = subprocess.run(
            [a.atlas, "layout", "--method", "tsne", "--dims", str(dims), "--seed", str(a.seed),
             "--input", os.path.join(work, "X.npy"), "--output", out],
            capture_output=True, text=True,
        )
        secs = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"atlas failed: {r.stderr}")
        rows["atlas"] = (secs, np.load(out).reshape(a.n, dims))
        for name, (secs, y) in rows.items():
            t, ag, a1 = scores(x, y, labels, a.k)
            print(f"{dims}-D  {name:>8} {secs:8.2f} {t:7.4f} {ag:8.4f} {a1:7.4f}", flush=True)
        if "sklearn" in rows:
            print(f"{dims}-D  sklearn/atlas time ratio {rows['sklearn'][0] / rows['atlas'][0]:.2f}x",
                  flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
