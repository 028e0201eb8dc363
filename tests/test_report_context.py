"""What the deck and the report print, gathered from a run record (report/context.py): the engine's phrase, the
comparison's best values, and the dataset's name."""

from pipeline.engine.config import load_config
from report import context


def test_the_engine_is_said_in_one_phrase_with_the_cluster_s_numbers():
    assert context.engine_text({"engine": "local"}).startswith("local (this machine")
    ray = {"engine": "ray", "workers": 1, "ray": {"nodes": 2, "cpus": 2.0, "gpus": 0.0}}
    assert context.engine_text(ray) == ("Ray Data (1 model worker on a 2-node cluster, 2 CPUs, 0 GPUs; decoding in "
                                        "Ray tasks)")
    assert "3 model workers" in context.engine_text({**ray, "workers": 3})


def test_the_best_of_each_column_and_each_backbone_s_best_pooling():
    rows = [{"backbone": "A", "pooling": "CLS", "knn_accuracy": 0.7, "linear_probe_accuracy": 0.8},
            {"backbone": "A", "pooling": "mean", "knn_accuracy": 0.75, "linear_probe_accuracy": 0.78},
            {"backbone": "B", "pooling": "pixels", "knn_accuracy": 0.6, "linear_probe_accuracy": float("nan")}]
    best = context.best_of({"rows": rows})
    assert best["values"] == {"knn_accuracy": 0.75, "linear_probe_accuracy": 0.8}, "NaN is never the best"
    assert best["by"] == "linear_probe_accuracy"
    assert [(r["backbone"], r["pooling"]) for r in best["per_backbone"]] == [("A", "CLS"), ("B", "pixels")]
    assert context.best_of(None) == {}


def test_the_dataset_is_the_demo_or_the_folder_s_name():
    assert context.dataset_name(load_config(None, []), "/x/y") == "Fashion-MNIST test split (demo subset)"
    assert context.dataset_name(load_config(None, ["images=/photos/shoot"]), "/photos/shoot") == "shoot"


def test_an_update_is_said_per_map_with_its_counts_and_a_fresh_run_says_only_what_it_embedded():
    moved = {"kept": 60, "added": 8, "removed": 0, "moved_median": 0.004, "moved_p99": 0.02, "moved_max": 0.05,
             "neighbours_survive": 0.9}
    summaries = {"extract": {"embedded": 8, "reused": 60}, "tsne": {"since_last": moved},
                 "umap": {"since_last": {**moved, "moved_median": 0.009}},
                 "parametric": {"param_umap": {"since_last": moved}, "tsne_mlp": {"since_last": None}}}
    facts = context.update_facts(summaries)
    assert (facts["embedded"], facts["reused"]) == (8, 60)
    assert [(m["map"], m["moved_median"]) for m in facts["maps"]] == [("t-SNE", 0.004), ("UMAP", 0.009),
                                                                      ("parametric UMAP", 0.004)]
    assert facts["changes"] == {"kept": 60, "added": 8, "removed": 0}
    too_few = {**moved, "kept": 2, "moved_median": None}  # under 3 kept images nothing is measured
    fresh = context.update_facts({"extract": {"embedded": 68, "reused": 0}, "tsne": {"since_last": too_few}})
    assert fresh["maps"] == [] and fresh["changes"] is None
    cached = context.update_facts({"extract": {"embedded": 68, "reused": 0}}, "cached")
    assert cached["cached"] and cached["embedded"] == 0  # a cached extraction ran nothing through the network now
