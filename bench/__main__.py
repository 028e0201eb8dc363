"""``python -m bench``: run the benchmark parts, merge their figures into one JSON file, print the table.

Parts: extract, photos (26 MP JPEGs decoded at the size needed, beside today's full decode), scale (the 70k run,
beside a reference commit's), maps (needs the 70k run's embeddings), report
and place (both on the 70k run's output folder, or the one ``--run`` names), deck, ray (the Ray engine against the
local one), compare (what `make compare` adds to the demo deck), acceptance (the findings' precision and recall
on real sets with planted problems: Fashion-MNIST, 8x8 digits, photo tiles), million (synthetic points made from the 70k run
through every analysis stage; not in the default set: hours on 2 cores), update (the 70k run, then 1 % more images
in the same folder, beside a cold run of all of them; not in the default set: about 30 min). A part run again replaces its own
figures and keeps the others', so parts can be rerun alone.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import click

PARTS = ("extract", "photos", "scale", "maps", "report", "place", "deck", "ray", "compare", "acceptance", "million",
         "update")
DEFAULT_PARTS = PARTS[:-2]


@click.command()
@click.option("--parts", default=",".join(DEFAULT_PARTS), show_default=True, help="Comma-separated parts to run.")
@click.option("--out", default="out/bench", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--full-set", default="data/fashion-mnist-70k", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Where the 70,000 images are (written once).")
@click.option("--ray-set", default="data/fashion-mnist-10k", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Where the ray part's 10,000 images are (written once).")
@click.option("--reference", default="512ace4", show_default=True,
              help="The commit the scale and deck parts run side by side with this code ('' for none).")
@click.option("--sizes", default="2000,10000,70000", show_default=True, help="N for the maps part.")
@click.option("--reps", default=3, show_default=True, help="Repetitions (median quoted); 1 at 70k.")
@click.option("--run", "run_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="The finished run the report and place parts measure (default: the scale part's 70k run).")
@click.option("--fresh-clone/--no-fresh-clone", default=True, show_default=True,
              help="Time `make deck` in a fresh clone (install included).")
@click.option("--million-source", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="The finished run the million part makes its points from [default: OUT/scale-run].")
@click.option("--million-n", default=1_000_000, show_default=True, type=click.IntRange(min=3),
              help="Synthetic points of the million part.")
@click.option("--million-baseline", default=70_000, show_default=True, type=click.IntRange(min=0),
              help="Points of the harness run the growth is measured from, when the scale part's stage times are "
                   "missing (0: none).")
@click.option("--million-keep", is_flag=True, help="Reuse the finished stages of an earlier million run (their "
              "times are those measured then; state 'cached') instead of starting cold. A growth exponent that rests on "
              "a cached time, at either size, is shown but not judged: delete that entry to measure it side by side.")
@click.option("--million-stages", default="", help="Only these analysis stages of the million part and the stages "
              "they read (e.g. neighbours,retrieval,classes: the retrieval + k-NN figure); the whole-analysis target "
              "is then not judged [default: every stage].")
def main(parts: str, out: Path, full_set: Path, ray_set: Path, reference: str, sizes: str, reps: int,
         run_dir: Path | None, fresh_clone: bool, million_source: Path | None, million_n: int,
         million_baseline: int, million_keep: bool, million_stages: str) -> None:
    from pipeline.registry import stage_output

    from . import (acceptance, common, compare, deck, extraction, maps, million, photos, place_accuracy, ray_overhead,
                   report, scale, table, targets, update)

    logging.basicConfig(level=logging.WARNING)
    wanted = [p.strip() for p in parts.split(",") if p.strip()]
    unknown = set(wanted) - set(PARTS)
    if unknown:
        raise click.BadParameter(f"unknown parts {sorted(unknown)}; parts: {', '.join(PARTS)}")
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "bench.json"
    results = json.loads(json_path.read_text()) if json_path.is_file() else {}
    results["machine"] = common.machine()
    scale_out = out / "scale-run"
    for part in PARTS:
        if part not in wanted:
            continue
        click.echo(f"bench: {part} ...", err=True)
        started = time.perf_counter()
        if part == "extract":
            results[part] = {**extraction.run(reps=reps), "cpu_flags": results["machine"]["cpu_flags"]}
        elif part == "photos":
            results[part] = photos.run(out.resolve(), reps=reps)
        elif part == "scale":
            results[part] = scale.run(full_set.resolve(), scale_out.resolve(), reference)
        elif part == "maps":
            if not (scale_out / "run.json").is_file():
                raise click.ClickException("the maps part reads the 70k run's embeddings: run the scale part first")
            record = json.loads((scale_out / "run.json").read_text(encoding="utf-8"))
            embeddings = stage_output(record, "extract", "embeddings")  # the entry that run used, by its record
            results[part] = maps.run(embeddings, [int(s) for s in sizes.split(",")], reps)
        elif part in ("report", "place"):
            measured = (run_dir or scale_out).resolve()
            if not (measured / "run.json").is_file():
                raise click.ClickException(f"the {part} part measures a finished run: none in {measured} (run the scale "
                                           "part, or name one with --run)")
            results[part] = report.run(measured) if part == "report" else place_accuracy.run(measured)
        elif part == "deck":
            results[part] = deck.run(fresh=fresh_clone, reference=reference)
        elif part == "ray":
            results[part] = ray_overhead.run(ray_set.resolve(), (out / "ray-run").resolve())
        elif part == "compare":
            results[part] = compare.run((out / "compare-run").resolve())
        elif part == "acceptance":
            results[part] = acceptance.run((out / "acceptance").resolve())
        elif part == "million":  # the scale part's stage times are its baseline only when it is its source
            source = (million_source or scale_out).resolve()
            results[part] = million.run(source, out.resolve(), million_n,
                                        results.get("scale") if source == scale_out.resolve() else None,
                                        million_baseline, million_keep,
                                        tuple(s.strip() for s in million_stages.split(",") if s.strip()))
        elif part == "update":
            results[part] = update.run(full_set.resolve(), (out / "update-run").resolve())
        results[part]["bench_seconds"] = round(time.perf_counter() - started, 1)
        json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    results["targets"] = targets.evaluate(results)
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = table.render(results, results["targets"])
    (out / "bench.md").write_text(text + "\n")
    click.echo(text)
    click.echo(f"figures: {json_path}; table: {out / 'bench.md'}", err=True)


if __name__ == "__main__":
    main()
