"""The parametric heads' training: capped epochs, judged only on the images it saw (the map quality of the heads
is judged in test_analyses.py and the full suite's run)."""

import numpy as np

from pipeline.methods import sampling
from pipeline.engine.config import load_config
from pipeline.methods import map_head_training


def test_parametric_training_is_capped_and_judged_on_what_it_saw(pixel_features):
    x, labels = pixel_features
    held = sampling.holdout_split([str(v) for v in labels], 0.2, seed=0)
    train = np.flatnonzero(~held)
    rows = sampling.sample_of(train, 150, seed=0)
    assert len(rows) == 150 and not held[rows].any() and np.array_equal(rows, sampling.sample_of(train, 150, 0))
    assert np.array_equal(sampling.sample_of(train, 0, 0), train)
    cfg = load_config(None, ["parametric.umap_edges_per_epoch=2000", "parametric.tsne_images_per_epoch=100",
                             "parametric.umap_epochs=5", "parametric.tsne_epochs=5"])
    heads = map_head_training.train_heads(x, x[:, :2], held, cfg)
    umap_facts, mlp_facts = heads["param_umap"].fit_facts, heads["tsne_mlp"].fit_facts
    assert umap_facts["train_images"] == mlp_facts["train_images"] == len(train), "every training image, none held out"
    assert umap_facts["edges_per_epoch"] == 2000 < umap_facts["graph_edges"], "the epoch's edges are capped"
    assert mlp_facts["images_per_epoch"] == 100
