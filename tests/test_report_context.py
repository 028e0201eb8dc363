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
