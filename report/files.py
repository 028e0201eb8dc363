"""Writing the deck's and the report's files: an identical file is left untouched, so that make (and Slidev's
build) see nothing new and rebuild nothing."""

from __future__ import annotations

import shutil
from pathlib import Path


def copy_if_changed(source: Path, target: Path) -> None:
    if not target.exists() or target.read_bytes() != source.read_bytes():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def write_if_changed(path: Path, text: str) -> None:
    """Leave an identical file untouched, so that make sees nothing new and rebuilds nothing."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def sync_folder(files: dict[str, Path], dest: Path, keep=lambda name: False) -> None:
    """Make ``dest`` hold exactly ``files`` (name -> source; unchanged files untouched), besides what ``keep``
    spares: a map of fewer images leaves no sheet of a larger one behind."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        copy_if_changed(source, dest / name)
    for stale in dest.iterdir():
        if stale.is_file() and stale.name not in files and not keep(stale.name):
            stale.unlink()
