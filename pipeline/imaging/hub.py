"""Weights from the Hugging Face hub, asked of the hub client itself, with every failure named.

``huggingface_hub`` already honours ``HF_ENDPOINT`` (a mirror), ``HTTPS_PROXY`` / ``HTTP_PROXY`` (through its HTTP
client), ``HF_HOME`` / ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE``, so this module never probes a fixed host: it asks
the client for the file's metadata with a short timeout (one try, no retries, under a hard deadline so that a
stalled DNS lookup cannot hold a run either), then downloads through the same client. Each failure becomes a
``HubFailure`` whose ``kind`` says what happened and whether the hub could be reached at all: only a hub that
is disabled or cannot be reached lets ``backbone.model = auto`` fall back to the bundled backbone; a repository
that is missing or gated, a full disk or a truncated download is an error.

Answers are kept per process, so the several stages that resolve the backbone in one run ask the hub once.
"""

from __future__ import annotations

import errno
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("embdeck")

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Kinds of failure after which the hub truly could not be reached (or was switched off): the only ones after which
# ``auto`` may fall back to the bundled backbone.
UNREACHABLE = frozenset({"disabled", "timeout", "unreachable", "proxy"})


class HubFailure(Exception):
    """Why the hub gave no weights: ``kind`` (disabled, timeout, unreachable, proxy, not-found, gated, server,
    not-a-hub, disk-full, truncated, failed) and a one-line message that says it in words."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind

    @property
    def unreachable(self) -> bool:
        return self.kind in UNREACHABLE


@dataclass(frozen=True)
class HubWeights:
    """A weights file the hub client found: in its cache (``hub-cache``) or downloaded now (``hub-download``)."""

    path: str
    source: str
    reason: str


def endpoint() -> str:
    from huggingface_hub import constants

    return without_credentials(constants.ENDPOINT)


def without_credentials(url: str) -> str:
    """A URL as it may be shown on a slide: any ``user:password@`` taken out."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def offline() -> bool:
    """Whether the hub client is switched off (``HF_HUB_OFFLINE``), as the client itself reads it."""
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def one_line(text: str, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def proxy_in_use() -> str:
    """The proxy the hub client goes through for the endpoint's scheme, as its environment names it, or ""."""
    import os

    scheme = "HTTPS" if endpoint().startswith("https:") else "HTTP"
    for name in (f"{scheme}_PROXY", f"{scheme.lower()}_proxy", "ALL_PROXY", "all_proxy"):
        if os.environ.get(name):
            return without_credentials(os.environ[name])
    return ""


def through() -> str:
    proxy = proxy_in_use()
    return f" through the proxy {proxy}" if proxy else ""


def cut_short(text: str) -> str:
    """The sizes of a short download, from the hub client's consistency check, or its message."""
    import re

    sizes = re.search(r"should be of size (\d+) but has size (\d+)", text)
    return f"{int(sizes[2]):,} of {int(sizes[1]):,} bytes" if sizes else one_line(text, 100)


def classify(exc: BaseException, repo_id: str, filename: str, timeout_s: float) -> HubFailure:
    """The hub client's exception as a named failure (its cause chain is searched for the root)."""
    import httpx2
    from huggingface_hub import errors

    where = endpoint()
    chain, seen = [], exc
    while seen is not None and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for cause in chain:
        if isinstance(cause, errors.OfflineModeIsEnabled):
            return HubFailure("disabled", "the hub is switched off (HF_HUB_OFFLINE)")
        if isinstance(cause, httpx2.ProxyError):
            return HubFailure("proxy", f"the proxy {proxy_in_use() or '(from the environment)'} refused the request to "
                                       f"{where}: {one_line(cause)}")
        if isinstance(cause, httpx2.TimeoutException):
            return HubFailure("timeout", f"the hub at {where} did not answer{through()} within {timeout_s:g} s "
                                         "(backbone.hub_timeout_s)")
        if isinstance(cause, httpx2.ConnectError):
            return HubFailure("unreachable", f"the hub at {where} could not be reached{through()} "
                                             f"({one_line(cause, 80)})")
        if isinstance(cause, (httpx2.RemoteProtocolError, httpx2.ReadError)) or "Consistency check failed" in str(cause):
            return HubFailure("truncated", f"the download of {repo_id}/{filename} from {where} was cut short "
                                           f"({cut_short(str(cause))})")
        if isinstance(cause, errors.GatedRepoError):
            return HubFailure("gated", f"{repo_id} on {where} is gated: accept its terms on the hub and log in "
                                       "(HF_TOKEN), or pass backbone.weights=FILE")
        if isinstance(cause, errors.RepositoryNotFoundError):
            return HubFailure("not-found", f"{where} has no repository {repo_id}")
        if isinstance(cause, (errors.RevisionNotFoundError, errors.RemoteEntryNotFoundError)):
            return HubFailure("not-found", f"{where} has no {filename} in {repo_id}")
        if isinstance(cause, errors.HfHubHTTPError) and cause.response is not None:
            status = cause.response.status_code
            kind = {401: "gated", 403: "gated", 404: "not-found"}.get(status, "server" if status >= 500 else "failed")
            return HubFailure(kind, f"the hub at {where} answered HTTP {status} for {repo_id}/{filename}")
        if isinstance(cause, errors.FileMetadataError):
            return HubFailure("not-a-hub", f"{where} answered, but not as a Hugging Face hub does "
                                           "(check HF_ENDPOINT and the proxy)")
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return HubFailure("disk-full", f"no space left to store {repo_id}/{filename} in the hub cache "
                                           f"({cache_folder()})")
        if isinstance(cause, OSError) and cause.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            return HubFailure("failed", f"the hub cache {cache_folder()} is not writable ({cause.strerror})")
    return HubFailure("failed", f"{repo_id}/{filename} from {where}: {type(exc).__name__}: {one_line(exc, 100)}")


def cache_folder() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def within(seconds: float, call):
    """``call()``, or a timeout failure after ``seconds``: the client's own timeout does not cover a DNS lookup
    that hangs, and a run without network must not stall. The call runs in a daemon thread left to finish."""
    box: dict = {}

    def target():
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="hub-probe")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def check_file(path: str, repo_id: str, filename: str) -> None:
    """A safetensors file must be whole (its header covers the file exactly); a damaged one is an error."""
    if not filename.endswith(".safetensors"):
        return
    from safetensors import safe_open

    try:
        with safe_open(path, framework="np") as handle:
            handle.keys()
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is not whole
        raise HubFailure("truncated", f"{repo_id}/{filename} at {path} is damaged ({one_line(exc, 100)}); "
                                      "delete it and run again") from None


def cached(repo_id: str) -> HubWeights | None:
    """The repository's weights in the hub cache, checked whole; no network."""
    from huggingface_hub import try_to_load_from_cache

    for filename in WEIGHT_FILES:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str) and Path(found).is_file():
            check_file(found, repo_id, filename)
            return HubWeights(found, "hub-cache", f"found {repo_id} in the hub cache")
    return None


def download(repo_id: str, timeout_s: float) -> HubWeights:
    """Ask the hub (one metadata request per file name, within ``timeout_s``), then download what it has."""
    from huggingface_hub import errors, get_hf_file_metadata, hf_hub_download, hf_hub_url

    if offline():
        raise HubFailure("disabled", "the hub is switched off (HF_HUB_OFFLINE)")
    for filename in WEIGHT_FILES:
        try:
            within(timeout_s + 2.0, lambda: get_hf_file_metadata(hf_hub_url(repo_id, filename), timeout=timeout_s))
        except errors.RemoteEntryNotFoundError:
            continue  # the repository is there; try its other file name
        except TimeoutError:
            raise HubFailure("timeout", f"the hub at {endpoint()} did not answer{through()} within {timeout_s:g} s "
                                        "(backbone.hub_timeout_s)") from None
        except Exception as exc:  # noqa: BLE001 - named below
            raise classify(exc, repo_id, filename, timeout_s) from None
        try:
            path = hf_hub_download(repo_id, filename, etag_timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - named below
            raise classify(exc, repo_id, filename, timeout_s) from None
        check_file(path, repo_id, filename)
        log.info("downloaded %s/%s from %s", repo_id, filename, endpoint())
        return HubWeights(path, "hub-download", f"downloaded {repo_id} from {endpoint()}")
    raise HubFailure("not-found", f"{endpoint()} has neither {' nor '.join(WEIGHT_FILES)} in {repo_id}")


_ANSWERS: dict[tuple[str, float], HubWeights | HubFailure] = {}


def weights(repo_id: str, timeout_s: float) -> HubWeights:
    """The repository's weights file: from the hub cache, else downloaded; raises ``HubFailure``.

    One answer per process and repository: the first run of the day downloads and says ``hub-download``, and the
    stages after it in the same run see that same answer instead of asking again."""
    key = (repo_id, float(timeout_s))
    if key not in _ANSWERS:
        try:
            _ANSWERS[key] = cached(repo_id) or download(repo_id, timeout_s)
        except HubFailure as failure:
            _ANSWERS[key] = failure.with_traceback(None)
    answer = _ANSWERS[key]
    if isinstance(answer, HubFailure):
        # A fresh exception each time: raising the kept one would chain every caller's frames onto its
        # traceback and keep them (and the arrays they hold, memory-mapped outputs too) alive for the process.
        raise HubFailure(answer.kind, str(answer))
    if not Path(answer.path).is_file():  # removed since: ask again
        del _ANSWERS[key]
        return weights(repo_id, timeout_s)
    return answer
