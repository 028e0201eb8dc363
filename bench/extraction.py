"""Extraction speed and quality: fp32 vs bf16, batched vs the seed deck's way, against the GEMM peak.

Speed runs on real demo images through the pipeline's own ``Extractor`` (decode, resize and model, decoding
in worker threads), so the figure is what a run gets; the model-only figure on a ready tensor shows how much
of that time the model is, and its FLOP/s is read against the GEMM peak of the same dtype.
The seed deck's way (``seed_way``): read one image, resize it to 32 px, ``interpolate`` it to the input size,
forward it alone, in fp32 — the reference every ratio here is against.
Quality: the bundled backbone's features on all demo images in fp32 and bf16 (lowest and mean cosine, k-NN
accuracy on the labels), and at a smaller input size (112 px, for 28-px images such as Fashion-MNIST).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np

from .common import gemm_peak, timed

DTYPES = ("fp32", "bf16")


def demo_paths() -> tuple[list[Path], list[str]]:
    from pipeline.demo import ensure_demo
    from pipeline.engine.config import Config

    folder = ensure_demo(Config())
    paths = sorted(folder.rglob("*.png"))
    return paths, [p.parent.name for p in paths]


def build_extractor(name: str, dtype_name: str, input_size: int = 0, device: str = "cpu"):
    import torch

    from pipeline.engine.config import load_config
    from pipeline.imaging import backbone as backbones
    from pipeline.imaging.features import Extractor, preprocess_for

    overrides = [f"backbone.input_size={input_size}"]
    if name == "vit":  # the DINO ViT-S/16 architecture; random weights cost the same as DINO's
        overrides += ["backbone.model=vit_small_patch16_224.dino", "backbone.weights=random"]
    cfg = load_config(None, overrides)
    model = backbones.build(backbones.resolve(cfg.backbone), seed=0).eval()
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    return Extractor(model, preprocess_for(model, cfg), torch.device(device), dtype, cfg.ingest.max_pixels)


def model_flops(extractor) -> float:
    """FLOPs of one image's forward pass (matmuls and convolutions, counted by torch).

    torch's counter does not see the CPU kernel of fused attention (``scaled_dot_product_attention``), so
    ViT-S/16 would count 8.48 GFLOP instead of 9.20; the count runs on a copy with timm's fused attention
    off, whose explicit matmuls are the same arithmetic and are counted.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(extractor.model)
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    size = extractor.prep.input_size
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.forward_features(torch.zeros(1, 3, size, size, device=extractor.device))
    return float(counter.get_total_flops())


def pipeline_speed(extractor, paths: list[Path], batch_size: int, reps: int) -> dict:
    workers = os.cpu_count() or 1
    extractor.run(paths[:batch_size], batch_size, workers, desc="warm-up")
    timing, _ = timed(lambda: extractor.run(paths, batch_size, workers, desc="bench"), reps)
    return {**timing, "images_per_s": round(len(paths) / timing["median_s"], 2),
            "model_share": round(extractor.model_seconds / timing["runs_s"][-1], 3)}


def model_speed(extractor, batch_size: int, reps: int, flops: float) -> dict:
    import torch

    size = extractor.prep.input_size
    x = np.zeros((batch_size, size, size, 3), dtype=np.uint8)
    sync = torch.cuda.synchronize if extractor.device.type == "cuda" else (lambda: None)

    def once():
        extractor.features(x)
        sync()

    timing, _ = timed(once, reps, warmup=1)
    per_s = batch_size / timing["median_s"]
    return {**timing, "images_per_s": round(per_s, 2), "gflop_per_image": round(flops / 1e9, 3),
            "gflop_per_s": round(per_s * flops / 1e9, 1)}


def seed_way(extractor, paths: list[Path], reps: int) -> dict:
    """The seed deck's loop: one image at a time, 32-px thumbnail upsampled on the device, fp32."""
    import cv2
    import torch

    size = extractor.prep.input_size
    model = copy.deepcopy(extractor.model).to(memory_format=torch.contiguous_format)  # the seed's plain layout
    mean = torch.tensor(extractor.prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(extractor.prep.std).view(1, 3, 1, 1)

    @torch.inference_mode()
    def loop():
        for path in paths:
            rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            small = cv2.resize(rgb, (32, 32))
            x = torch.from_numpy(small).permute(2, 0, 1)[None].float() / 255.0
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            model.forward_features((x - mean) / std)

    loop_timing, _ = timed(loop, reps, warmup=0)
    return {**loop_timing, "images_per_s": round(len(paths) / loop_timing["median_s"], 2)}


def quality(paths: list[Path], labels: list[str], batch_size: int) -> dict:
    """Bundled backbone on every demo image: bf16 vs fp32 at the default size, and 112 px vs the default."""
    from pipeline.analyses.probes import knn_accuracy
    from pipeline.imaging.features import cosine_rows

    workers = os.cpu_count() or 1
    label_array = np.asarray(labels)
    variants = {"fp32 default size": ("fp32", 0), "bf16 default size": ("bf16", 0), "bf16 112 px": ("bf16", 112),
                "fp32 112 px": ("fp32", 112)}
    features, out = {}, {}
    for name, (dtype_name, size) in variants.items():
        extractor = build_extractor("bundled", dtype_name, size)
        features[name] = extractor.run(paths, batch_size, workers, desc=name)[0]
        accuracy, folds = knn_accuracy(features[name], label_array, 5, 5, 0)
        out[name] = {"knn_accuracy": round(accuracy, 4), "input_size": extractor.prep.input_size}
    for name, reference in (("bf16 default size", "fp32 default size"), ("bf16 112 px", "fp32 112 px")):
        cos = cosine_rows(features[name], features[reference])
        out[name].update({"cosine_to_fp32_min": round(float(cos.min()), 5), "cosine_to_fp32_mean": round(float(cos.mean()), 5),
                          "knn_delta_vs_fp32": round(out[name]["knn_accuracy"] - out[reference]["knn_accuracy"], 4)})
    out["images"], out["folds"] = len(paths), folds
    return out


def run(reps: int = 3, speed_images: int = 256, batch_size: int = 64) -> dict:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    paths, labels = demo_paths()
    speed_paths = [paths[i] for i in np.linspace(0, len(paths) - 1, speed_images).round().astype(int)]
    peaks = {d: gemm_peak(d, device) for d in DTYPES}
    from pipeline.imaging.features import pick_dtype

    default = "bf16" if pick_dtype("auto", torch.device(device)) == torch.bfloat16 else "fp32"
    result: dict = {"device": device, "default_dtype": default, "gemm_peak_gflop_per_s": peaks, "speed_images": len(speed_paths),
                    "batch_size": batch_size, "backbones": {}}
    for name in ("vit", "bundled"):
        rows = {}
        for dtype_name in DTYPES:
            extractor = build_extractor(name, dtype_name, device=device)
            flops = model_flops(extractor)
            rows[dtype_name] = {"pipeline": pipeline_speed(extractor, speed_paths, batch_size, reps),
                                "model_only": model_speed(extractor, batch_size, reps, flops)}
        reference = build_extractor(name, "fp32", device=device)
        seed_count = max(16, len(speed_paths) // 4)  # one image at a time is slow; a quarter of the images
        rows["seed_way"] = seed_way(reference, speed_paths[:seed_count], reps)
        rows["input_size"] = reference.prep.input_size
        rows["model"] = reference.model.default_cfg.get("architecture", name)
        result["backbones"][name] = rows
    # The peak again after the models ran: the higher of the two is the ceiling every fraction is read against.
    after = {d: gemm_peak(d, device) for d in DTYPES}
    result["gemm_peak_before_and_after"] = {d: [peaks[d], after[d]] for d in DTYPES}
    result["gemm_peak_gflop_per_s"] = {d: max(peaks[d], after[d]) for d in DTYPES}
    for rows in result["backbones"].values():
        for d in DTYPES:
            model = rows[d]["model_only"]
            model["fraction_of_peak"] = round(model["gflop_per_s"] / result["gemm_peak_gflop_per_s"][d], 3)
    result["quality"] = quality(paths, labels, batch_size)
    return result
