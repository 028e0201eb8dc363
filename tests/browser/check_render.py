"""Check what `make deck` made, as a person would see it: the built deck and the report in headless Chromium
(served from loopback), and the PDF's pages rendered to pixels. Screenshots go to <out>/check-render/.

Usage: python tests/browser/check_render.py [--out out] [--slides slides]
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


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


def pdf_pages_have_content(pdf: Path, shots: Path) -> list[str]:
    """Render every PDF page; a page with (almost) no ink is a blank export."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), f"{tmp}/page"], check=True)
        pages = sorted(Path(tmp).glob("page-*.png"))
        if not pages:
            return [f"{pdf} has no pages"]
        import cv2

        for page in pages:
            pixels = cv2.imread(str(page), cv2.IMREAD_GRAYSCALE)
            if (pixels < 200).mean() < 0.002:
                problems.append(f"PDF page {page.stem} is blank")
        (shots / "pdf-page-01.png").write_bytes(pages[0].read_bytes())
    return problems


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="out")
    parser.add_argument("--slides", default="slides")
    args = parser.parse_args()
    out, slides = Path(args.out).resolve(), Path(args.slides).resolve()
    shots = out / "check-render"
    shots.mkdir(parents=True, exist_ok=True)
    record = json.loads((out / "run.json").read_text())
    images = record["summaries"]["ingest"]["images"]
    deck_server, report_server = serve(slides / "dist"), serve(out / "report")
    try:
        proc = subprocess.run(
            ["node", str(HERE / "check_render.mjs"), f"http://127.0.0.1:{deck_server.server_port}/index.html",
             f"http://127.0.0.1:{report_server.server_port}/index.html", str(images), str(shots)],
            cwd=ROOT, capture_output=True, text=True, timeout=600)
    finally:
        deck_server.shutdown()
        report_server.shutdown()
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        return 1
    problems = result["problems"] + pdf_pages_have_content(slides / "deck.pdf", shots)
    print(f"deck: {result['slides']} slides checked; report checked; screenshots in {shots}")
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
