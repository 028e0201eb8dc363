"""Check what `make deck` made, as a person would see it: the built deck and the report in headless Chromium
(served from loopback) with a real mouse on their maps, and the PDF's pages rendered to pixels. Each slide must
keep its content on the slide, show no raw markdown, and keep its text (HTML in the PDF, and inside figures)
at or above deck_judge.TEXT_FLOOR_PX. Screenshots go to <out>/check-render/, with contact-sheet.png: every
slide in one picture, the ones with a problem framed in red.

Usage: python tests/browser/check_render.py [--out out] [--slides slides] [--dist DIR] [--quick] [--probe TEXT]
--quick: the maps only (no screenshot of every slide, no PDF): the pytest-level check.
--probe: search the report's map for TEXT; every file name containing it must be listed, as written.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import subprocess
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import deck_judge  # noqa: E402
from map_judge import judge  # noqa: E402

MAP_SLIDE_INK = 0.03  # the printed map slide holds two figures: far more ink than a title over an empty canvas


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        # Chromium asks every origin for /favicon.ico; the pages themselves never reference one.
        if self.path == "/favicon.ico":
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()


def serve(folder: Path) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def pdf_pages_have_content(pdf: Path, shots: Path, map_slide: int | None) -> list[str]:
    """Render every PDF page; a page with (almost) no ink is a blank export, and the map slide must show its
    figures (the interactive map cannot print)."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), f"{tmp}/page"], check=True)
        pages = sorted(Path(tmp).glob("page-*.png"))
        if not pages:
            return [f"{pdf} has no pages"]
        import cv2

        for number, page in enumerate(pages, 1):
            ink = (cv2.imread(str(page), cv2.IMREAD_GRAYSCALE) < 200).mean()
            if ink < 0.002:
                problems.append(f"PDF page {page.stem} is blank")
            if number == map_slide and ink < MAP_SLIDE_INK:
                problems.append(f"PDF page {number} (the map slide) shows no figure (ink {ink:.3f})")
            if number in (1, map_slide):
                (shots / f"pdf-page-{number:02d}.png").write_bytes(page.read_bytes())
    cover = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True).stdout
    if "Exploring Image" not in cover:
        problems.append("the PDF's cover page has no title text (pushed off the page?)")
    return problems


def run_browser(out: Path | None, dist: Path, images: int, shots: Path, mode: str, probe: str) -> dict:
    """check_render.mjs on the built deck (and the report in ``out`` unless ``mode`` is "slides")."""
    deck_server, report_server = serve(dist), serve(out / "report" if out else dist)
    try:
        proc = subprocess.run(
            ["node", str(HERE / "check_render.mjs"), f"http://127.0.0.1:{deck_server.server_port}/index.html",
             f"http://127.0.0.1:{report_server.server_port}/index.html", str(images), str(shots),
             mode, probe], cwd=ROOT, capture_output=True, text=True, timeout=900)
    finally:
        deck_server.shutdown()
        report_server.shutdown()
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return {"problems": [f"the browser check did not finish: {proc.stdout[-2000:]} {proc.stderr[-3000:]}"]}


def check(out: Path, slides: Path, dist: Path, quick: bool, probe: str = "") -> tuple[dict, list[str]]:
    """The browser's observations and every problem found in them (and in the PDF unless ``quick``); ``probe``:
    a text to search the report's map for, whose every matching file name must be listed as written."""
    shots = out / "check-render"
    shots.mkdir(parents=True, exist_ok=True)
    record = json.loads((out / "run.json").read_text())
    result = run_browser(out, dist, record["summaries"]["ingest"]["images"], shots, "quick" if quick else "full", probe)
    problems = list(result["problems"])
    if "map" in result:
        problems += judge(result, record)
    if not quick:
        problems += pdf_pages_have_content(slides / "deck.pdf", shots, result.get("mapSlide"))
        problems += reads_right(result, dist, slides / "deck.pdf", shots)
    (shots / "observed.json").write_text(json.dumps(result, indent=1))
    return result, problems


def reads_right(result: dict, dist: Path, pdf: Path | None, shots: Path) -> list[str]:
    """What deck_judge finds in the measured slides (overflow, raw markdown, figure text under the floor) and
    in the PDF's text; the contact sheet of every slide, with those slides framed, in ``shots``. The smallest
    text sizes found are recorded in ``result["text_px"]``."""
    problems = deck_judge.overflowing(result.get("overflow", {})) + deck_judge.raw_markdown(result.get("texts", {}))
    found, result["text_px"] = deck_judge.small_figure_text(result.get("images", {}), dist)
    problems += found
    if pdf is not None:
        found, result["pdf_text_px"] = deck_judge.small_pdf_text(pdf)
        problems += found
    marked = {int(m) for p in problems for m in re.findall(r"^(?:slide|PDF page) (\d+):", p)}
    numbered = [(int(p.stem.split("-")[1]), p) for p in sorted(shots.glob("slide-[0-9][0-9].png"))]
    if numbered:
        result["contact_sheet"] = str(deck_judge.contact_sheet(numbered, shots / "contact-sheet.png", marked))
    return problems


def check_slides(dist: Path, pdf: Path | None, shots: Path) -> tuple[dict, list[str]]:
    """A built deck alone (no run, no report, no map): every slide measured, judged and screenshotted."""
    shots.mkdir(parents=True, exist_ok=True)
    result = run_browser(None, dist, 0, shots, "slides", "")
    return result, list(result["problems"]) + reads_right(result, dist, pdf, shots)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="out")
    parser.add_argument("--slides", default="slides")
    parser.add_argument("--dist", default=None, help="the built deck (default: <slides>/dist)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--probe", default="", help="search the report's map for this; all matches must be listed")
    args = parser.parse_args()
    out, slides = Path(args.out).resolve(), Path(args.slides).resolve()
    dist = Path(args.dist).resolve() if args.dist else slides / "dist"
    result, problems = check(out, slides, dist, args.quick, args.probe)
    hovers = sum(len(result.get("map", {}).get(kind, {}).get("hovers", [])) for kind in ("deck", "report"))
    print(f"deck: {result.get('slides', 0)} slides checked; maps: {hovers} hovers judged; screenshots in "
          f"{out / 'check-render'}")
    if not args.quick:
        sizes = ", ".join(f"{what} {result[key]:.1f} px" for what, key in (("PDF text", "pdf_text_px"),
                          ("figure text", "text_px")) if result.get(key) is not None)
        print(f"smallest text on a slide (980 px wide; floor {deck_judge.TEXT_FLOOR_PX:g} px): {sizes}; contact sheet: "
              f"{result.get('contact_sheet')}")
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
