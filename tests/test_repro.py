"""Reproducibility: two clean runs on the same images, config and seed give the same numbers, and the run
record names what shaped them."""


import numpy as np
import pytest

from helpers import invoke, quick_settings, record

pytestmark = pytest.mark.full  # whole decks and runs: the full suite


def test_two_clean_runs_give_identical_numbers(tmp_path, small_set):
    outputs = []
    for name in ("first", "second"):
        invoke("run", "--images", str(small_set), "--out", str(tmp_path / name), *quick_settings())
        arrays = {str(p.relative_to(tmp_path / name)).split("/")[1] + "/" + p.name: np.load(p)
                  for p in sorted((tmp_path / name).glob("cache/*/*/*.npy"))}
        summaries = record(tmp_path / name)["summaries"]
        outputs.append((arrays, summaries))
    (first, s1), (second, s2) = outputs
    assert first.keys() == second.keys() and len(first) >= 15
    for key in first:
        assert first[key].tobytes() == second[key].tobytes(), key

    def numbers(summary):
        """Everything but wall-clock timings (and shares of them) and the TorchScript archive's size (its zip holds the name of the
        folder it was written in, so its bytes differ while its outputs, compared above, do not)."""
        if isinstance(summary, dict):
            return {k: numbers(v) for k, v in summary.items() if "seconds" not in k and "ms_per" not in k
                    and k not in ("images_per_s", "speedup_vs_refit", "bytes", "model_share")}
        return summary

    assert numbers(s1) == numbers(s2)
    rec = record(tmp_path / "first")
    for library in ("torch", "timm", "numpy", "scikit-learn", "openTSNE", "umap-learn", "faiss-cpu", "opencv-python-headless"):
        assert rec["versions"][library], library
    assert len(rec["config_hash"]) == 64 and len(rec["input"]["manifest_hash"]) == 64
    assert len(rec["backbone"]["weights_sha256"]) == 64
