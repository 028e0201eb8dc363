"""A stand-in Hugging Face hub on loopback, for tests: the routes ``huggingface_hub`` downloads a file through.

HEAD and GET on ``/{org}/{name}/resolve/{revision}/{file}`` answer with ``Content-Length``, ``ETag`` and
``X-Repo-Commit`` (and, for weights, ``X-Linked-Etag`` / ``X-Linked-Size``, as the hub does for LFS files);
anything else is a 404 with the hub's ``X-Error-Code``. A repository can be made to fail the ways a real one
does: gated (401, ``GatedRepo``), slow (its answers wait), truncated (the body stops at half while the
metadata announce the whole). A request in absolute form (``GET http://host/...``) is answered too, so the
server is its own HTTP forward proxy for a hub address that does not resolve. Every request is logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth")
DINO_REPO = "timm/vit_small_patch16_224.dino"  # the repository timm asks the hub for DINO ViT-S/16
RANDOM_NOTE = "seeded random weights of {arch} (torch seed {seed}) for embdeck's tests: not pretrained, not DINO"


@functools.lru_cache(maxsize=4)
def random_weights(arch: str, seed: int = 0) -> bytes:
    """A timm architecture's state dict with seeded random weights, as safetensors bytes; the file's metadata
    say what they are, so a deck made from them says so too."""
    import tempfile

    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, num_classes=0)
    tensors = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        save_file(tensors, str(path), metadata={"format": "pt", "description": RANDOM_NOTE.format(arch=arch, seed=seed)})
        return path.read_bytes()


@dataclass
class Repo:
    files: dict[str, bytes]
    gated: bool = False
    delay_s: float = 0.0
    truncate: bool = False


@dataclass
class StandInHub:
    """The server, its repositories, the requests it saw (method, path, whether it came as a proxy) and the
    paths it has answered after any delay asked for (``answered``: what a client that waited would have got)."""

    repos: dict[str, Repo] = field(default_factory=dict)
    requests: list[tuple[str, str, bool]] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def add(self, repo_id: str, files: dict[str, bytes], **behaviour) -> None:
        self.repos[repo_id] = Repo(files, **behaviour)

    @contextlib.contextmanager
    def behaving(self, repo_id: str, **behaviour):
        """The repository fails as asked (``gated=True``, ``truncate=True``, ``delay_s=...``) inside the block."""
        before = self.repos[repo_id]
        self.repos[repo_id] = dataclasses.replace(before, **behaviour)
        try:
            yield
        finally:
            self.repos[repo_id] = before

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "StandInHub":
        hub = self

        class Handler(Answer):
            stand_in = hub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def downloads(self, filename: str) -> int:
        return sum(1 for method, path, _ in self.requests if method == "GET" and path.endswith(f"/{filename}"))


class Answer(BaseHTTPRequestHandler):
    stand_in: StandInHub

    def log_message(self, *args) -> None:  # quiet: the hub's log is ``requests``
        pass

    def do_HEAD(self) -> None:
        self.answer(body=False)

    def do_GET(self) -> None:
        self.answer(body=True)

    def fail(self, status: int, code: str) -> None:
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def answer(self, body: bool) -> None:
        proxied = self.path.startswith("http://")
        path = urlsplit(self.path).path if proxied else self.path.split("?")[0]
        self.stand_in.requests.append((self.command, path, proxied))
        parts = path.strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self.fail(404, "RepoNotFound")
        repo = self.stand_in.repos.get("/".join(parts[:2]))
        if repo is None:
            return self.fail(404, "RepoNotFound")
        time.sleep(repo.delay_s)
        self.stand_in.answered.append(path)
        if repo.gated:
            return self.fail(401, "GatedRepo")
        filename = "/".join(parts[4:])
        if filename not in repo.files:
            return self.fail(404, "EntryNotFound")
        data = repo.files[filename]
        etag = hashlib.sha256(data).hexdigest()
        sent = data[: len(data) // 2] if repo.truncate and body else data
        self.send_response(200)
        self.send_header("Content-Length", str(len(sent)))
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Repo-Commit", COMMIT)
        if filename.endswith(WEIGHT_SUFFIXES):
            self.send_header("X-Linked-Etag", f'"{etag}"')
            self.send_header("X-Linked-Size", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(sent)


def point_client_at(monkeypatch, endpoint: str, cache: Path, offline: bool = False) -> None:
    """Point this process's hub client at ``endpoint`` with ``cache`` as its hub cache, on or offline.

    The client reads HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE once, when it is imported, so a test in this
    process sets what it read (with ``monkeypatch``: undone after the test); the tests that check the
    environment variables themselves run embdeck in a fresh process (test_hub)."""
    from huggingface_hub import constants

    from pipeline.imaging import hub

    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(hub, "_ANSWERS", {})  # the pipeline's own memory of the hub's answers
