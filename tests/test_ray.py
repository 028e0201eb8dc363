"""Extraction on Ray Data, on a real local Ray cluster of two nodes (a head and a second node, one CPU each,
started here as separate processes, torn down afterwards): equal to the local engine's, complete after a model
worker is killed mid-run, and cached as the local engine's is."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.engine.config import load_config
from pipeline.registry import STAGES, declared
from pipeline.engine.runner import Runner
from pipeline.engine.stored_rows import load_array

FLOAT_OUTPUTS = ("embeddings", "patch_mean", "patch_tokens")
EXACT_OUTPUTS = ("pixels", "thumbs", "patch_pixels")
BATCH = 8  # small batches: many of them, so a worker can be killed with work still to do

# With pytest-xdist (--dist loadgroup), the tests of one shared run stay on one worker.
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes on this machine, one CPU each; the engine finds them through RAY_ADDRESS. Only the tests that
    use it need Ray (the `ray` extra, which make test installs); without it they are skipped, and the others run."""
    pytest.importorskip("ray")
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    raylets = {n.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid for n in nodes.list_all_nodes()}
    previous = os.environ.get("RAY_ADDRESS")
    os.environ["RAY_ADDRESS"] = nodes.address
    yield {"address": nodes.address, "raylets": raylets}
    if previous is None:
        os.environ.pop("RAY_ADDRESS", None)
    else:
        os.environ["RAY_ADDRESS"] = previous
    nodes.shutdown()


def run_extract(images: Path | str, out: Path, *overrides: str) -> dict:
    cfg = load_config(None, [f"images={images}", f"out={out}", f"extract.batch_size={BATCH}", *overrides])
    runner = Runner(cfg, STAGES)
    return runner.run(only="extract")


def outputs(result: dict) -> dict[str, np.ndarray]:
    folder = Path(result["stages"]["extract"]["dir"])
    outputs = declared("extract").outputs
    arrays = {key: load_array(folder / outputs[key]) for key in FLOAT_OUTPUTS + EXACT_OUTPUTS}
    arrays["patch_images"] = json.loads((folder / "patch_images.json").read_text())
    return arrays


@pytest.fixture(scope="module")
def local(small_set, tmp_path_factory) -> dict:
    return outputs(run_extract(small_set, tmp_path_factory.mktemp("local")))


def assert_equal_to_local(ray_outputs: dict, local: dict) -> None:
    for key in FLOAT_OUTPUTS:
        assert ray_outputs[key].shape == local[key].shape, key
        assert np.abs(ray_outputs[key] - local[key]).max() <= 1e-5, key
    for key in EXACT_OUTPUTS:
        assert np.array_equal(ray_outputs[key], local[key]), f"{key}: kept from the same decode, byte for byte"
    assert ray_outputs["patch_images"] == local["patch_images"]


@pytest.mark.full
def test_ray_extraction_equals_local_and_is_cached_like_it(cluster, small_set, local, tmp_path):
    out = tmp_path / "out"
    first = run_extract(small_set, out, "extract.engine=ray")
    assert first["stages"]["extract"]["state"] == "ran"
    summary = first["summaries"]["extract"]
    assert summary["engine"] == "ray" and summary["workers"] == 1
    assert summary["ray"]["nodes"] == 2 and summary["ray"]["cpus"] == 2 and not summary["ray"]["started_here"]
    assert summary["images"] == 60 and summary["ray"]["rows_returned_twice"] == 0
    assert summary["embedded"] == 60 and summary["reused"] == 0
    assert_equal_to_local(outputs(first), local)

    # The Ray engine writes into the embedding store: another run on the same store embeds nothing.
    shared = run_extract(small_set, tmp_path / "shared", "extract.engine=ray", f"store={out / 'store'}")
    assert (shared["summaries"]["extract"]["embedded"], shared["summaries"]["extract"]["reused"]) == (0, 60)
    for key in (*FLOAT_OUTPUTS[:2], *EXACT_OUTPUTS[:2]):
        assert np.array_equal(outputs(shared)[key], outputs(first)[key]), key

    again = run_extract(small_set, out, "extract.engine=ray")
    assert {s["state"] for s in again["stages"].values()} == {"cached"}, "a second run recomputes nothing"
    # The engine says how extraction runs, not what it computes: switching back reuses the same outputs.
    local_again = run_extract(small_set, out, "extract.engine=local")
    assert local_again["stages"]["extract"]["state"] == "cached"
    assert local_again["stages"]["extract"]["key"] == first["stages"]["extract"]["key"]


def processes_under(parents: set[int]) -> dict[int, str]:
    """{pid: command line} of the processes whose parent is one of ``parents`` (Ray's workers under a raylet)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent in parents:
            found[int(entry)] = command.strip()
    return found


class Killer(threading.Thread):
    """Kills the model actor's process (SIGKILL) once it is busy with a batch after results have come back."""

    def __init__(self, raylets: set[int], out: Path):
        super().__init__(daemon=True)
        self.raylets, self.out = raylets, out
        self.killed: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.time() + 1800  # a loaded machine can take minutes to start the cluster and the actor
        while not self.stop.is_set() and time.time() < deadline:
            started = list(self.out.glob("store/*/index.json"))  # the first batch is in the embedding store
            busy = [pid for pid, command in processes_under(self.raylets).items()
                    if command.startswith("ray::MapWorker(MapBatches(ModelWorker)).submit")]
            if started and busy:
                os.kill(busy[0], signal.SIGKILL)
                self.killed = busy[0]
                return
            time.sleep(0.01)


@pytest.mark.full
def test_a_worker_killed_mid_run_loses_nothing(cluster, small_set, local, tmp_path):
    """Also: the images named by a URI, so the decode tasks read them through pyarrow's filesystem."""
    out = tmp_path / "out"
    killer = Killer(cluster["raylets"], out)
    killer.start()
    try:
        result = run_extract(small_set.as_uri(), out, "extract.engine=ray", f"extract.store_segment_rows={BATCH}")
    finally:
        killer.stop.set()
        killer.join()
    assert killer.killed is not None, "the model worker was never caught busy mid-run"
    assert not Path(f"/proc/{killer.killed}").exists() or "zombie" in Path(f"/proc/{killer.killed}/status").read_text()
    summary = result["summaries"]["extract"]
    served = summary["ray"]["actor_processes"]
    assert any(name.endswith(f":{killer.killed}") for name in served), "killed after it had returned a batch"
    assert len(served) == 2, "a restarted actor (a new process) returned the rest"
    assert summary["images"] == 60 and result["summaries"]["ingest"]["folder"].startswith("file://")
    assert_equal_to_local(outputs(result), local)


def test_the_pool_is_one_actor_per_gpu_or_per_node_and_leaves_cpus_to_decode():
    from pipeline.engine.artifacts import StageError
    from pipeline.imaging.ray_engine import Cluster, pool_plan

    gpus = Cluster("x", False, nodes=2, cpus=32, gpus=4, connect_seconds=0)
    assert pool_plan(gpus, 0) == (4, {"num_gpus": 1, "num_cpus": 1}, 1)
    with pytest.raises(StageError, match="takes a GPU"):
        pool_plan(gpus, 5)
    cpus = Cluster("x", False, nodes=4, cpus=64, gpus=0, connect_seconds=0)
    assert pool_plan(cpus, 0) == (4, {"num_cpus": 1}, 16), "one per node, torch on the node's CPUs"
    assert pool_plan(cpus, 8) == (8, {"num_cpus": 1}, 8)
    one_machine = Cluster("x", True, nodes=1, cpus=2, gpus=0, connect_seconds=0)
    assert pool_plan(one_machine, 0) == (1, {"num_cpus": 1}, 2)
    with pytest.raises(StageError, match="no CPU to decode"):
        pool_plan(one_machine, 2)


def test_a_file_gone_since_ingest_is_named_not_retried(small_set, tmp_path):
    """A decode task turns an unreadable file into a blank row with its reason; the driver stops on it."""
    from pipeline.imaging.decoding import Keep, Preprocess
    from pipeline.imaging.ray_engine import decode_rows

    prep = Preprocess(64, 1.0, "bicubic", (0.5,) * 3, (0.5,) * 3)
    rel = sorted(p.relative_to(small_set).as_posix() for p in small_set.rglob("*.png"))[:2]
    batch = {"row": np.array([0, 1]), "path": np.array([rel[0], "gone.png"], dtype=object)}
    out = decode_rows(batch, str(small_set), Keep(pixels=8, thumb=16, crop=32, crop_rows=frozenset({0}),
                                                  input_rows=frozenset({0})), prep, 10**8)
    assert out["error"][0] == "" and out["error"][1].endswith("gone.png: unreadable: No such file or directory")
    assert out["input"].shape == (2, 64, 64, 3) and out["pixels"].shape == (2, 8, 8, 3) and not out["input"][1].any()
    assert out["crop"][0].shape == (32, 32, 3) and out["crop"][1].size == 0 and out["kept_input"][1].size == 0
