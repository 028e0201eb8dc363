"""The ``embdeck`` command: run the pipeline, show what is stale, render the deck and report."""

from __future__ import annotations

import errno
import functools
import logging
import os
import sys
import time
from pathlib import Path

import click

from .engine.config import Config, ConfigError, load_config
from .engine.library_log import library_messages_to_log

log = logging.getLogger("embdeck")


WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class UserError(click.ClickException):
    """Printed as one line, no traceback; exit status 2."""

    exit_code = 2


def common_options(func):
    @click.option("--images", type=click.Path(file_okay=False), help="Image folder (default: the demo set).")
    @click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config file.")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value.")
    @click.option("--out", type=click.Path(file_okay=False), help="Output folder (default: out).")
    @click.option("--compare", metavar="LIST", help="Backbones to compare, comma-separated (backbone.compare): timm "
                  "names, bundled, pixels, NAME:random, NAME:FILE, or demo.")
    @functools.wraps(func)
    def wrapper(images, config_file, overrides, out, compare, **kwargs):
        with user_errors():
            options = ([f"images={images}"] * bool(images) + [f"out={out}"] * bool(out)
                       + [f"backbone.compare={compare}"] * bool(compare))
            cfg = load_config(config_file, [*overrides, *options])
            check_paths(cfg)
            with library_messages_to_log(cfg.out):
                return func(cfg, **kwargs)

    return wrapper


class user_errors:
    """Turn the pipeline's user-facing errors into one-line messages."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        from .demo import DemoDataError
        from .engine.artifacts import StageError

        if exc is not None and isinstance(exc, (ConfigError, StageError, DemoDataError)):
            raise UserError(str(exc)) from None
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRORS:
            raise UserError(f"cannot write {exc.filename or 'the output'}: {exc.strerror} "
                            "(free some space or choose another --out); finished stages are kept") from None
        return False


def check_paths(cfg: Config) -> None:
    from .imaging.storage import is_uri

    out = Path(cfg.out).expanduser().resolve()
    if cfg.images and not is_uri(cfg.images):  # a URI's folder is checked when ingest lists it
        images = Path(cfg.images).expanduser().resolve()
        if not images.is_dir():
            raise ConfigError(f"image folder not found: {images}")
        if out == images or images in out.parents:
            raise ConfigError(f"the output folder {out} is inside the image folder {images}; choose --out elsewhere")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"the output folder {out} is not writable: {exc.strerror}; choose --out elsewhere") from None


def setup_logging(verbose: bool) -> None:
    """Our progress at INFO; libraries (faiss, openTSNE, numba) only when they warn, unless --verbose."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """embdeck: what a vision backbone makes of an image collection, as a deck and a report."""
    setup_logging(verbose)


def run_pipeline(cfg: Config, only: str | None, force: bool) -> dict:
    from .analyses.backbone_comparison import check
    from .demo import ensure_demo
    from .engine.record import build_record, write_record
    from .engine.runner import Runner
    from .registry import STAGES

    check(cfg)  # every backbone to compare named rightly and its weights to be had, before any work
    if not cfg.images:
        ensure_demo(cfg)
    runner = Runner(cfg, STAGES)
    started = time.perf_counter()
    result = runner.run(only=only, force=force)
    publish_models(result, runner.root)
    record = build_record(cfg, result, time.perf_counter() - started)
    write_record(runner.root / "run.json", record)
    ran = [name for name, stage in result["stages"].items() if stage["state"] == "ran"]
    click.echo(f"ran: {', '.join(ran) or 'nothing (all cached)'}; run record: {runner.root / 'run.json'}", err=True)
    for name, reason in record["not_run"].items():
        click.echo(f"not run: {name}: {reason}", err=True)
    return record


def publish_models(result: dict, root: Path) -> None:
    """Copy the exported models to ``<out>/model_repository`` (a Triton model repository), atomically."""
    import shutil

    from .registry import declared

    export = result["stages"].get("export")
    if export is None or "dir" not in export:
        return
    repository = declared("export").outputs["repository"].split("/")[0]  # "model_repository/*": the whole folder
    source, target = Path(export["dir"]) / repository, root / repository
    staging = root / f".{repository}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)  # with the ensembles' empty version folders
    old = root / f".{repository}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


@main.command()
@common_options
@click.option("--only", help="Run this stage (and whatever stale stage it needs).")
@click.option("--force", is_flag=True, help="Rerun even when cached (with --only: just that stage).")
def run(cfg: Config, only: str | None, force: bool) -> None:
    """Run the stale stages of the pipeline."""
    run_pipeline(cfg, only, force)


@main.command()
@common_options
@click.option("--only", help="Run this stage (and whatever stale stage it needs).")
@click.option("--force", is_flag=True, help="Rerun even when cached.")
def deck(cfg: Config, only: str | None, force: bool) -> None:
    """Run what is stale, then render the Slidev deck and the HTML report."""
    from report.render import render_all

    record = run_pipeline(cfg, only, force)
    written = render_all(cfg, record)
    for what, path in written.items():
        click.echo(f"{what}: {path}")


@main.command()
@common_options
def status(cfg: Config) -> None:
    """Say which stages are up to date and why the others are stale."""
    from .engine.runner import Runner
    from .registry import STAGES

    for plan in Runner(cfg, STAGES).plan():
        if plan.off:
            click.echo(f"{plan.stage.name:8s} off: {plan.off}")
        elif plan.reasons:
            click.echo(f"{plan.stage.name:8s} stale: {'; '.join(plan.reasons)}")
        else:
            click.echo(f"{plan.stage.name:8s} up to date ({plan.key[:12]})")


@main.command("backbone")
@common_options
def backbone_command(cfg: Config) -> None:
    """Say which backbone a run would use and where its weights come from (downloading them if need be)."""
    from .imaging.backbone import resolve

    choice = resolve(cfg.backbone)
    click.echo(f"{choice.display_name} ({choice.model}): {choice.source}"
               + (f", sha256 {choice.weights_sha256[:16]}…" if choice.weights_sha256 else "") + f"; {choice.reason}"
               + (f"; the weights file says: {choice.note}" if choice.note else ""))
    if choice.weights_path:
        click.echo(f"weights: {choice.weights_path}")


@main.command("store")
@common_options
@click.option("--gc", "collect", is_flag=True, help="Free the namespaces no run has used for --keep-days, the rows "
              "no output folder's run has read for as long, and the files of appends that were killed.")
@click.option("--keep-days", default=30.0, show_default=True, type=click.FloatRange(0),
              help="With --gc: how recently a run must have used a namespace for it to stay.")
def store_command(cfg: Config, collect: bool, keep_days: float) -> None:
    """Report the embedding store's size (each namespace: one backbone and its settings), and with --gc free
    what no recent run uses."""
    from .engine import embedding_store as stores

    root = stores.store_root(cfg.out, cfg.store)
    if collect:
        freed = stores.collect(root, keep_days)
        click.echo(f"freed {freed['bytes'] / 2**20:.1f} MiB: {len(freed['namespaces'])} namespace(s) unused for "
                   f"{keep_days:g} days, {freed['rows']:,} row(s) no run read in that time, {freed['orphans']} file(s) "
                   "of killed appends")
    spaces = stores.namespaces(root)
    for space in spaces:
        click.echo(f"{space['name']}  {space['rows']:>9,} rows  {space['segments']:>5} segments  "
                   f"{space['bytes'] / 2**20:>9.1f} MiB  last used {space['used'] or 'never'}")
    click.echo(f"{root}: {len(spaces)} namespace(s), {sum(s['bytes'] for s in spaces) / 2**20:.1f} MiB")


@main.command()
def graph() -> None:
    """Print the stage graph: each stage with its inputs, parameters and outputs, from its declaration."""
    from .registry import STAGES, describe

    click.echo(describe(STAGES), nl=False)


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--out", default="out", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="The finished run to place onto (its run.json and model_repository/).")
@click.option("--format", "model_format", type=click.Choice(["pt2", "torchscript"]), default="pt2", show_default=True,
              help="Which exported files to run: model.pt2 (torch.export) or model.pt (TorchScript).")
@click.option("--neighbours", "k", default=5, show_default=True, type=click.IntRange(1, 100),
              help="Nearest images in the collection to list for each new image.")
def place(folder: Path, out: Path, model_format: str, k: int) -> None:
    """Place the images in FOLDER on a finished run's t-SNE and parametric UMAP maps (exported models, no refit).

    Writes OUT/placed/placed.csv (coordinates and nearest images) and placed_map.png, and adds the new images to
    the report's map as their own layer.
    """
    from . import new_images as placing

    with user_errors():
        summary = placing.place(out, folder, model_format, k)
        rerender_report(out)
    target = out.resolve() / placing.PLACED
    for item in summary["skipped"]:
        click.echo(f"skipped {item['path']}: {item['reason']}", err=True)
    skipped = f"; {len(summary['skipped'])} file(s) skipped (listed above)" if summary["skipped"] else ""
    click.echo(f"placed {summary['count']} image(s) in {summary['seconds']} s ({summary['images_per_s']} images/s after "
               f"{summary['model_load_seconds']} s loading the models){skipped}", err=True)
    click.echo(f"CSV: {target / 'placed.csv'}\nfigure: {target / 'placed_map.png'}")


def rerender_report(out: Path) -> None:
    """Render the run's report again (when it has one) so that its map shows the placed images."""
    import json

    from report.render import render_report

    from .engine.config import build

    report = out.resolve() / "report"
    if (report / "index.html").is_file():
        record = json.loads((out.resolve() / "run.json").read_text(encoding="utf-8"))
        render_report(build(record["config"]), record, report)
        click.echo(f"report: {report / 'index.html'}")


@main.command()
@common_options
def demo(cfg: Config) -> None:
    """Write the demo image set (once)."""
    from .demo import ensure_demo

    click.echo(str(ensure_demo(cfg)))


@main.command("fashion-mnist")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def fashion_mnist(folder: Path) -> None:
    """Write all 70,000 Fashion-MNIST images (train and test) as PNG files into FOLDER, for scale runs."""
    from .demo import write_full_dataset

    if folder.exists() and any(folder.iterdir()):
        raise click.ClickException(f"{folder} is not empty; give a new folder")
    click.echo(f"{write_full_dataset(folder)} images written to {folder}")


if __name__ == "__main__":
    main()
