"""Render the run into the Slidev deck (``slides/slides.md``) and the static HTML report.

Both come from Jinja templates under ``templates/`` with StrictUndefined, so a missing number fails the
render instead of leaving a hole. Text from the user's data is escaped for its destination: HTML entities
for the report (autoescape), and for the deck HTML plus Vue's ``{{`` (Slidev compiles slides as Vue).
"""

from __future__ import annotations

import html
from pathlib import Path

import jinja2

from pipeline.engine.config import Config

from .context import deck_context
from .files import copy_if_changed, sync_folder, write_if_changed
from .new_images_layer import placed_layer

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
WEB = ROOT / "web"  # the map's browser code, shared by the report and the deck's component
COMPONENTS = ROOT / "slides" / "components"
DECK_SCRIPTS = ("map-core.js", "map-view.js")
REPORT_SCRIPTS = ("map-core.js", "map-view.js", "report-map.js")


def escape_deck(value) -> str:
    """Text safe to place in Slidev markdown: no HTML, no Vue interpolation, no markdown emphasis."""
    text = html.escape(str(value), quote=True)
    for char, entity in (("{", "&#123;"), ("}", "&#125;"), ("*", "&#42;"), ("_", "&#95;"), ("`", "&#96;"),
                         ("[", "&#91;"), ("]", "&#93;"), ("|", "&#124;"), ("$", "&#36;")):
        text = text.replace(char, entity)
    return text


def environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             autoescape=autoescape, keep_trailing_newline=True, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["deck"] = escape_deck
    env.filters["thousands"] = lambda n: f"{n:,}"
    env.filters["number"] = number
    return env


def number(value, form: str) -> str:
    """``form % value``, or "undefined" for a null: a score with no value (silhouette with one cluster) is
    written as null in the run's JSON, never NaN."""
    return "undefined" if value is None else form % value


def copy_figures(record: dict, dest: Path) -> dict[str, dict[str, str]]:
    """Copy every figure the stages declare and made into ``dest``; return {stage: {key: file name}}."""
    from pipeline.registry import STAGES

    dest.mkdir(parents=True, exist_ok=True)
    names: dict[str, dict[str, str]] = {}
    for stage in STAGES:
        ran = record["stages"].get(stage.name, {})
        if "dir" not in ran:
            continue
        for key, name in stage.figures.items():
            if (Path(ran["dir"]) / name).is_file():  # an optional output the stage could not make is absent
                copy_if_changed(Path(ran["dir"]) / name, dest / name)
                names.setdefault(stage.name, {})[key] = name
    return names


def copy_data(record: dict, dest: Path) -> list[str]:
    """The lists the stages write for the user (CSV, file lists), beside the report; returns their names."""
    from pipeline.registry import STAGES

    copied = []
    for stage in STAGES:
        ran = record["stages"].get(stage.name, {})
        for name in stage.outputs.values():
            source = Path(ran.get("dir", "/nonexistent")) / name
            if name.endswith((".csv", ".txt")) and source.is_file():
                copy_if_changed(source, dest / name)
                copied.append(name)
    return copied


def urls(names: dict[str, dict[str, str]], prefix: str) -> dict[str, dict[str, str]]:
    return {stage: {key: prefix + name for key, name in figures.items()} for stage, figures in names.items()}


def map_files(record: dict, scripts: tuple[str, ...], neighbours: bool) -> dict[str, Path]:
    """The gallery stage's map data (with or without the neighbour files) and the browser code that reads it."""
    from pipeline.registry import stage_outputs

    keys = ("points", "tiles", "neighbour_files") if neighbours else ("points", "tiles")
    files = sorted(path for key in keys for path in stage_outputs(record, "gallery", key))
    return {path.name: path for path in files} | {name: WEB / name for name in scripts}


def render_deck(cfg: Config, record: dict, slides_dir: Path) -> Path:
    names = copy_figures(record, slides_dir / "public" / "figures")
    context = deck_context(cfg, record, urls(names, "/figures/"))
    if context["gallery_summary"]:  # the map slide's component and the data it loads
        sync_folder(map_files(record, DECK_SCRIPTS, neighbours=False), slides_dir / "public" / "map")
        for component in sorted(COMPONENTS.glob("*.vue")):
            copy_if_changed(component, slides_dir / "components" / component.name)
    text = environment(autoescape=False).get_template("slides.md.j2").render(**context)
    target = slides_dir / "slides.md"
    write_if_changed(target, text)
    return target


def render_report(cfg: Config, record: dict, report_dir: Path) -> Path:
    names = copy_figures(record, report_dir / "figures")
    context = deck_context(cfg, record, urls(names, "figures/"))
    context["data_files"] = copy_data(record, report_dir / "data")
    context["placed"] = None
    if context["gallery_summary"]:
        folder = report_dir / "map"
        files = map_files(record, REPORT_SCRIPTS, neighbours=True)
        placed = placed_layer(Path(cfg.out).resolve(), record, folder)
        sync_folder(files, folder, keep=lambda name: placed is not None and name in placed["files"])
        context["placed"] = placed
    text = environment(autoescape=True).get_template("report.html.j2").render(**context)
    target = report_dir / "index.html"
    write_if_changed(target, text)
    return target


def render_all(cfg: Config, record: dict) -> dict[str, Path]:
    return {
        "deck": render_deck(cfg, record, Path(cfg.slides).resolve()),
        "report": render_report(cfg, record, Path(cfg.out).resolve() / "report"),
    }
