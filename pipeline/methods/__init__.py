"""The math the stages call, each importable alone by a test or the bench without the runner: PCA, t-SNE
and UMAP fits, k-NN graphs (exact and approximate), k-means and its sweep, the parametric map heads and their
training, map quality, seeded sampling, patch PCA, the GPU paths."""
