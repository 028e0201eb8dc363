"""Does the deck read right? Judgements on what check_render.mjs measured in the browser and on the PDF's own
text, kept apart from the browser so that each can be tested alone on a small hand-made deck.

Sizes are in slide pixels: Slidev's canvas is 980 x 552 CSS px, whatever the screen or PDF page. The floor,
``TEXT_FLOOR_PX``, is 10 px there: 1.8 % of the slide's height, 20 px on a 1080p projector, 7.5 pt on the
exported PDF's 735 x 414 pt page (a slide read on a laptop screen at half width: still ~5 px of text height).
It holds for HTML text (from the PDF) and for the text inside figures (each PNG records its smallest text in
its own pixels, ``figures.save``; the browser measures how much the slide shrinks it).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from xml.etree import ElementTree

CANVAS_WIDTH = 980  # Slidev's default canvasWidth (CSS px); its aspect ratio 16:9 makes the height 552
TEXT_FLOOR_PX = 10.0
OVERFLOW_TOLERANCE_PX = 2.0  # anti-aliased edges and rounding; anything more is content off the slide
FIGURE_TEXT_KEY = "embdeck smallest text px"  # the PNG text chunk figures.save writes
LINE_BOX = 1.165  # poppler's word box over the font size: the demo PDF's 36 px headings give 41.9 px boxes

# Markdown that reached the rendered slide as text: the renderer did not read it (a table that lost its blank
# line, a bullet run into the line before, a Vue or Jinja expression left unevaluated).
RAW_MARKDOWN = (
    (re.compile(r"\|\s*:?(?:-{3,}|[—–])"), "a markdown table rule"),  # typography turns --- into a dash
    (re.compile(r"\*\*"), "bold markers"),
    (re.compile(r"\{\{|\}\}"), "template braces"),
    (re.compile(r"[)\d]- [A-Z]"), "a bullet run into the line before"),
)


def raw_markdown(texts: dict) -> list[str]:
    """Problems in each slide's rendered text ({slide number: innerText})."""
    problems = []
    for slide, text in texts.items():
        for pattern, what in RAW_MARKDOWN:
            found = pattern.search(text)
            if found:
                context = text[max(0, found.start() - 30):found.end() + 30].replace("\n", " ")
                problems.append(f"slide {slide}: raw markdown ({what}) in the rendered text: …{context}…")
    return problems


def overflowing(measured: dict, tolerance: float = OVERFLOW_TOLERANCE_PX) -> list[str]:
    """Problems from the elements that reach past their slide ({slide: [{"what", "text", "past"}]}, ``past``:
    the most slide px by which the element's box leaves the slide on any side)."""
    problems = []
    for slide, elements in measured.items():
        over = [e for e in elements if e["past"] > tolerance]
        for element in sorted(over, key=lambda e: -e["past"])[:3]:
            problems.append(f"slide {slide}: <{element['what']}> runs {element['past']:.0f} px off the slide: "
                            f"{element['text'][:60]!r}")
    return problems


def figure_text_px(png: Path) -> float | None:
    """The smallest text a figure holds, in its own pixels (as ``figures.save`` recorded it), or None."""
    from PIL import Image

    with Image.open(png) as image:
        value = getattr(image, "text", {}).get(FIGURE_TEXT_KEY)
    return float(value) if value else None


def small_figure_text(images: dict, dist: Path, floor: float = TEXT_FLOOR_PX) -> tuple[list[str], float | None]:
    """Problems where a figure shrinks its text below the floor ({slide: [{"src", "natural", "shown"}]}:
    the image's path in the built deck, its width in pixels and its width on the slide), and the smallest
    figure text found on any slide."""
    problems, smallest = [], None
    for slide, shown in images.items():
        for image in shown:
            path = dist / image["src"].lstrip("/")
            own = figure_text_px(path) if path.is_file() and image["natural"] else None
            if own is None:
                continue
            size = own * image["shown"] / image["natural"]
            smallest = size if smallest is None else min(smallest, size)
            if size < floor:
                problems.append(f"slide {slide}: the figure {Path(image['src']).name} shows its smallest text at "
                                f"{size:.1f} px (floor {floor:g} px)")
    return problems, smallest


def pdf_words(pdf: Path) -> list[tuple[int, str, float]]:
    """(page, word, height in slide px) of every word in the PDF, from ``pdftotext -bbox`` (poppler): a word's
    box is its font's ascent to descent, ``LINE_BOX`` times the font size, so heights are divided by that."""
    html = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    root = ElementTree.fromstring(re.sub(r"<!DOCTYPE[^>]*>", "", html).replace(' xmlns="http://www.w3.org/1999/xhtml"', ""))
    words = []
    for number, page in enumerate(root.iter("page"), 1):
        scale = CANVAS_WIDTH / float(page.get("width"))
        for word in page.iter("word"):
            height = (float(word.get("yMax")) - float(word.get("yMin"))) * scale / LINE_BOX
            words.append((number, word.text or "", height))
    return words



def small_pdf_text(pdf: Path, floor: float = TEXT_FLOOR_PX) -> tuple[list[str], float | None]:
    """Problems for each PDF page whose text is smaller than the floor, and the smallest size found."""
    words = [w for w in pdf_words(pdf) if w[1].strip()]
    problems = []
    for page in sorted({w[0] for w in words}):
        small = [w for w in words if w[0] == page and w[2] < floor]
        if small:
            least = min(small, key=lambda w: w[2])
            problems.append(f"PDF page {page}: {len(small)} word(s) under {floor:g} px, the smallest "
                            f"{least[1]!r} at {least[2]:.1f} px")
    return problems, min((w[2] for w in words), default=None)


def contact_sheet(shots: list[tuple[int, Path]], path: Path, marked: set[int] = frozenset(), columns: int = 6,
                  width: int = 320) -> Path:
    """Every slide's screenshot, small, numbered, in one PNG; the slides with a problem framed in red."""
    import cv2
    import numpy as np

    height = width * 9 // 16
    tiles = []
    for number, shot in shots:
        image = cv2.imread(str(shot))
        tile = np.full((height + 24, width, 3), 255, np.uint8)
        if image is not None:
            tile[24:] = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        colour = (0, 0, 220) if number in marked else (60, 60, 60)
        cv2.putText(tile, f"{number}" + ("  PROBLEM" if number in marked else ""), (4, 18),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 1, cv2.LINE_AA)
        if number in marked:
            cv2.rectangle(tile, (0, 0), (width - 1, height + 23), colour, 4)
        tiles.append(cv2.copyMakeBorder(tile, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=(255, 255, 255)))
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    cv2.imwrite(str(path), np.vstack(rows))
    return path
