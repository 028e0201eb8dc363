"""The hub path through a stand-in hub on loopback: mirrors (HF_ENDPOINT), proxies, HF_HUB_OFFLINE, and every
way a download fails, each named; ``auto`` falls back to the bundled backbone only when the hub cannot be
reached. The weights served are seeded random ViT-S/16 weights (their file says so), never real DINO ones.

Each case runs ``embdeck backbone`` in a fresh process, because the hub client reads its environment once,
when it is imported; these processes are the only ones in the test suite allowed to leave offline mode.
"""

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT
from hub_server import DINO_REPO, RANDOM_NOTE, StandInHub, random_weights

DINO = "vit_small_patch16_224.dino"


@pytest.fixture(scope="module")
def hub():
    served = StandInHub().start()
    served.add(DINO_REPO, {"model.safetensors": random_weights("vit_small_patch16_224"), "config.json": b"{}"})
    yield served
    served.stop()


def hub_env(hf_home: Path, endpoint: str, **extra) -> dict:
    """This process's environment with the hub switched on, pointed at ``endpoint``, and a fresh cache."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("HF_HUB_OFFLINE", "NO_PROXY", "no_proxy") and not key.lower().endswith("_proxy")}
    env.update({"HF_HOME": str(hf_home), "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1", **extra})
    return env


def embdeck(env: dict, *args: str, script: str = "") -> tuple[int, str, float]:
    """``embdeck ARGS`` in a fresh process; (exit status, its output, seconds). ``script`` runs first (a fault)."""
    code = f"{script}\nimport sys\nfrom pipeline.cli import main\nsys.argv = ['embdeck', *{list(args)!r}]\nmain()"
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - started


def one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in output, output[-2000:]
    return lines[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_auto_downloads_dino_from_a_mirror_then_finds_it_offline(hub, tmp_path):
    """The issue's first report: a working mirror and an empty cache must give DINO, not the bundled CNN."""
    env = hub_env(tmp_path / "hf", hub.url)
    status, output, _ = embdeck(env, "backbone")
    served = random_weights("vit_small_patch16_224")
    sha = hashlib.sha256(served).hexdigest()
    assert status == 0, output
    assert f"DINO ViT-S/16 ({DINO}): hub-download, sha256 {sha[:16]}" in output
    assert f"downloaded {DINO_REPO} from {hub.url}" in output
    assert RANDOM_NOTE.format(arch="vit_small_patch16_224", seed=0) in output, "the file says its weights are random"
    stored = Path(next(line for line in output.splitlines() if line.startswith("weights: "))[len("weights: "):])
    assert stored.is_relative_to(tmp_path / "hf") and hashlib.sha256(stored.read_bytes()).hexdigest() == sha
    assert hub.downloads("model.safetensors") == 1

    status, output, _ = embdeck({**env, "HF_HUB_OFFLINE": "1"}, "backbone")
    assert status == 0 and f"hub-cache, sha256 {sha[:16]}" in output and "found timm/" in output, output
    assert hub.downloads("model.safetensors") == 1, "offline: nothing asked of the hub"


def test_a_damaged_cached_file_is_an_error_not_a_fallback(hub, tmp_path):
    env = hub_env(tmp_path / "hf", hub.url)
    assert embdeck(env, "backbone")[0] == 0
    blob = next(p for p in (tmp_path / "hf").rglob("blobs/*") if p.stat().st_size > 1_000_000)
    blob.write_bytes(blob.read_bytes()[:1000])
    status, output, _ = embdeck({**env, "HF_HUB_OFFLINE": "1"}, "backbone")
    assert status == 2 and "is damaged" in one_line_error(output) and "model.safetensors" in output


def test_a_proxy_is_used_as_the_hub_client_uses_it(hub, tmp_path):
    """The hub's address resolves nowhere; only the proxy (HTTP_PROXY) reaches it. Without the proxy, the same
    address is unreachable, and auto says so and uses the bundled backbone."""
    port = hub.server.server_address[1]
    nowhere = f"http://hub.embdeck-test.invalid:{port}"
    proxied = hub_env(tmp_path / "hf", nowhere, HTTP_PROXY=hub.url, HTTPS_PROXY=hub.url)
    before = sum(1 for *_, via_proxy in hub.requests if via_proxy)
    status, output, _ = embdeck(proxied, "backbone")
    assert status == 0 and "hub-download" in output and f"from {nowhere}" in output, output
    assert sum(1 for *_, via_proxy in hub.requests if via_proxy) > before

    status, output, _ = embdeck(hub_env(tmp_path / "hf2", nowhere), "backbone")
    assert status == 0 and "EfficientNet-Lite0" in output and "bundled" in output, output
    assert f"the hub at {nowhere} could not be reached" in output


def test_a_hub_that_does_not_answer_is_a_short_timeout_never_a_stall(hub, tmp_path):
    """The hub holds its answer for 60 s; the process must have given up and ended while the hub still held
    it (an order of events, not a time measured against a bound)."""
    answered = len(hub.answered)
    with hub.behaving(DINO_REPO, delay_s=60.0):
        status, output, _ = embdeck(hub_env(tmp_path / "hf", hub.url), "backbone", "--set",
                                    f"backbone.model={DINO}", "--set", "backbone.hub_timeout_s=0.5")
        asked = len(hub.requests)
        assert len(hub.answered) == answered and asked > 0, "the process ended before the hub answered"
    assert status == 2, output
    line = one_line_error(output)
    assert f"no weights for {DINO}" in line and "did not answer within 0.5 s" in line


def test_an_unreachable_hub_falls_back_for_auto_and_fails_for_a_named_model(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    env = hub_env(tmp_path / "hf", closed)
    status, output, seconds = embdeck(env, "backbone")
    assert status == 0 and seconds < 20, (seconds, output)
    assert "EfficientNet-Lite0" in output and f"the hub at {closed} could not be reached" in output
    assert "DINO" not in output.split(":")[0], "the fallback is named for what it is"
    status, output, _ = embdeck(env, "backbone", "--set", f"backbone.model={DINO}")
    line = one_line_error(output)
    assert status == 2 and f"no weights for {DINO}" in line and "could not be reached" in line
    port = free_port()
    status, output, _ = embdeck({**env, "HTTP_PROXY": f"http://embdeck:s3cret@127.0.0.1:{port}"}, "backbone")
    assert status == 0 and f"could not be reached through the proxy http://***@127.0.0.1:{port}" in output, output
    assert "s3cret" not in output, "a proxy's password never reaches the output (nor a slide)"


def test_a_truncated_download_is_an_error_never_a_fallback(hub, tmp_path):
    with hub.behaving(DINO_REPO, truncate=True):
        status, output, _ = embdeck(hub_env(tmp_path / "hf", hub.url), "backbone")
    line = one_line_error(output)
    assert status == 2 and f"no weights for {DINO}" in line and "was cut short" in line, line
    assert "EfficientNet" not in output


def test_a_gated_repository_is_named(hub, tmp_path):
    with hub.behaving(DINO_REPO, gated=True):
        status, output, _ = embdeck(hub_env(tmp_path / "hf", hub.url), "backbone")
    line = one_line_error(output)
    assert status == 2 and "is gated" in line and DINO_REPO in line


def test_an_explicit_model_the_hub_lacks_is_an_error_that_names_it(hub, tmp_path):
    status, output, _ = embdeck(hub_env(tmp_path / "hf", hub.url), "backbone",
                                "--set", "backbone.model=vit_small_patch14_dinov2.lvd142m")
    line = one_line_error(output)
    assert status == 2 and "no weights for vit_small_patch14_dinov2.lvd142m" in line
    assert f"{hub.url} has no repository timm/vit_small_patch14_dinov2.lvd142m" in line


def test_a_full_disk_is_named_and_not_a_fallback(hub, tmp_path):
    """The cache's file system refuses the write (ENOSPC), as a full disk does."""
    fault = ("import errno, huggingface_hub.file_download as fd\n"
             "def full(*args, **kwargs):\n    raise OSError(errno.ENOSPC, 'No space left on device')\n"
             "fd.http_get = full")
    status, output, _ = embdeck(hub_env(tmp_path / "hf", hub.url), "backbone", script=fault)
    line = one_line_error(output)
    assert status == 2 and "no space left to store timm/vit_small_patch16_224.dino/model.safetensors" in line
    assert "EfficientNet" not in output
