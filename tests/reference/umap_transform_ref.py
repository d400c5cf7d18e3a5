#!/usr/bin/env python3
"""umap-learn's `transform` graph and initial positions, for tests/it/analysis_single_image.rs.

    umap_transform_ref.py TRAIN.npy QUERIES.npy OUT_DIR --n-neighbors K --metrics cosine,euclidean

For each metric: fits umap-learn on TRAIN (small: umap-learn then finds a new point's
neighbours by exact pairwise distances), then writes to OUT_DIR
  {metric}_embedding.npy  the fitted layout (n×2, float32), which the Rust side uses as the
                          fixed layout, so the comparison does not depend on the fit;
  {metric}_graph.npy      the dense q×n membership strengths of `transform_mode="graph"`
                          (neighbours, fuzzy weights with local_connectivity 0);
  {metric}_init.npy       `init_graph_transform` of that graph (q×2): the weighted initial
                          positions before the transform's SGD epochs.
The SGD epochs are not compared: they depend on umap-learn's random streams.
"""
import argparse
import os

import numpy as np
import umap
from umap.umap_ import init_graph_transform


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("queries")
    ap.add_argument("out")
    ap.add_argument("--n-neighbors", type=int, default=10)
    ap.add_argument("--metrics", default="cosine,euclidean")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    x = np.load(a.train).astype(np.float32)
    q = np.load(a.queries).astype(np.float32)
    for metric in a.metrics.split(","):
        r = umap.UMAP(
            n_neighbors=a.n_neighbors,
            metric=metric,
            n_epochs=30,
            init="random",
            random_state=a.seed,
        ).fit(x)
        # The graph `transform` builds before its SGD epochs.
        r.transform_mode = "graph"
        assert r._small_data, "the reference must use exact neighbours"
        graph = r.transform(q).tocsr()
        graph.eliminate_zeros()
        init = init_graph_transform(graph, r.embedding_)
        emb = r.embedding_.astype(np.float32)
        np.save(os.path.join(a.out, f"{metric}_embedding.npy"), emb)
        np.save(os.path.join(a.out, f"{metric}_graph.npy"), graph.toarray().astype(np.float32))
        np.save(os.path.join(a.out, f"{metric}_init.npy"), init.astype(np.float32))
        print(f"{metric}: {graph.nnz} edges for {q.shape[0]} new points", flush=True)


if __name__ == "__main__":
    main()
