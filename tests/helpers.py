"""What many test files need, written once: the repository root, the CLI called in-process, a run's record, a
map data file's payload, a folder's digest, and the Slidev build. Test files import from here, never from each
other."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner, Result

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "<img src=x onerror=alert(1)>{{ 7*7 }}"  # a file name that must reach no page as HTML or Vue
# Cheaper settings for what the quick runs do not judge (input size, iterations, map training, the sweep's width);
# the full suite's 300-image run keeps the defaults and judges quality.
QUICK = ("backbone.input_size=112", "tsne.n_iter=250", "parametric.umap_epochs=10", "parametric.tsne_epochs=20",
         "export.batch_size=2", "export.check_images=4", "clusters.steps=5", "clusters.n_init=1",
         "compare.linear_probe_max_iter=100")


def quick_settings() -> list[str]:
    """QUICK as command-line options."""
    return [arg for setting in QUICK for arg in ("--set", setting)]


def cli(*args) -> Result:
    """``embdeck ARGS`` in this process; the result, whatever its exit code."""
    return CliRunner().invoke(main, [str(a) for a in args])


def invoke(*args) -> str:
    """``embdeck ARGS``, which must succeed; its output."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def one_line_error(result: Result) -> str:
    """The single line a refused command printed (exit code 2)."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, (result.exit_code, result.output)
    return lines[0]


def strict_json(path: Path):
    """A JSON file read as a strict parser would: NaN and Infinity are refused, naming the file."""
    def refuse(constant):
        raise ValueError(f"{path} holds {constant}, which strict JSON parsers reject")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


def record(out: Path) -> dict:
    """A run's record (run.json), read strictly."""
    return strict_json(Path(out) / "run.json")


def stage_dirs(out: Path) -> dict[str, Path]:
    """Each stage's cache entry of the run recorded in ``out`` (not any other entry in the same cache)."""
    return {name: Path(stage["dir"]) for name, stage in record(out)["stages"].items() if stage.get("dir")}


def map_payload(path: Path, name: str) -> dict:
    """A map data file's payload, as web/map-core.js receives it."""
    text = path.read_text(encoding="ascii")
    return json.loads(re.fullmatch(r'EmbdeckMap\.receive\("%s", (.*)\);\n' % name, text, re.S).group(1))


def copy_of_run(out: Path, target: Path) -> Path:
    """A finished run's output folder copied to ``target``, its record naming the copy's own cache entries (a
    record holds absolute paths), so that the copy can be rerun, placed onto or changed alone."""
    shutil.copytree(out, target, symlinks=True)
    for name in ("run.json", "embdeck.lock.json"):
        path = target / name
        if path.is_file():
            path.write_text(path.read_text().replace(json.dumps(str(out.resolve()))[1:-1],
                                                     json.dumps(str(target.resolve()))[1:-1]))
    return target


def folder_digest(folder: Path) -> str:
    """One hash over every path and file's bytes below ``folder``: equal digests, an untouched folder."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def write_fashion_folder(target: Path, fashion, per_class: int, seed: int = 0) -> Path:
    """``per_class`` seeded Fashion-MNIST test images of each class, as PNG files in class folders."""
    from pipeline import demo

    images, labels = fashion
    demo.write_images(target, images, labels, demo.stratified_indices(labels, per_class, seed), prefix="test_")
    return target


def build_deck(slides: Path, dist: Path, base: str = "/") -> Path:
    """The rendered deck ``slides/slides.md`` built by Slidev into ``dist``, under the site path ``base``."""
    assert (ROOT / "node_modules" / ".bin" / "slidev").exists(), "run `make test`: it installs Slidev"
    proc = subprocess.run(["npx", "--no-install", "slidev", "build", str(slides / "slides.md"), "--out", str(dist),
                           "--base", base], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JITI_FS_CACHE": "false"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return dist
