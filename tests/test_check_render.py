"""The render check's judgement of a deck: content off the slide, raw markdown in the rendered text, text under
the floor (in the PDF and inside figures), and a contact sheet of every slide. The browser half runs on a small
hand-made deck built by Slidev (marked full: a build and an export take ~30 s)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "browser"))

import deck_judge  # noqa: E402
from pipeline.pictures import figures  # noqa: E402


@pytest.mark.parametrize("text, what", [
    ("model | output |\n|---|---|", "a markdown table rule"),
    ("in turn | model | |—|—|—| | dino_model", "a markdown table rule"),  # markdown-it's typography: --- is a dash
    ("k-NN accuracy **0.81**", "bold markers"),
    ("{{ $slidev.nav }}", "template braces"),
    ("(raw pixels 0.7735)- Deployable models", "a bullet run into the line before"),
])
def test_raw_markdown_is_found(text, what):
    (problem,) = deck_judge.raw_markdown({7: text})
    assert problem.startswith(f"slide 7: raw markdown ({what})")


def test_rendered_prose_is_not_raw_markdown():
    prose = ("T-shirt/top and Pullover - the 5-NN accuracy, 1–4,096 images; a | b in a sentence;\n"
             "k-means: k = 8 - ARI 0.51 (chance 0.1)\n- a bullet\n- another")
    assert deck_judge.raw_markdown({1: prose}) == []


def test_overflow_beyond_the_tolerance_is_a_problem():
    measured = {3: [{"what": "table", "text": "run  dd73", "past": 36.0}, {"what": "p", "text": "edge", "past": 1.5}],
                4: []}
    assert deck_judge.overflowing(measured) == ["slide 3: <table> runs 36 px off the slide: 'run  dd73'"]


def test_a_figure_records_its_smallest_text_and_a_slide_that_shrinks_it_is_judged(tmp_path):
    tiles = [np.full((16, 16, 3), 128, np.uint8)] * 4
    figures.image_grid(tiles, ["a", "b", "c", "d"], "grid", tmp_path / "grid.png", columns=2, text_pt=7)
    assert deck_judge.figure_text_px(tmp_path / "grid.png") == pytest.approx(7 * figures.DPI / 72, abs=0.05)
    from PIL import Image

    natural = Image.open(tmp_path / "grid.png").width
    shown = {5: [{"src": "/grid.png", "natural": natural, "shown": natural / 2}]}
    problems, smallest = deck_judge.small_figure_text(shown, tmp_path)
    assert smallest == pytest.approx(7.3, abs=0.05) and problems == [
        "slide 5: the figure grid.png shows its smallest text at 7.3 px (floor 10 px)"]
    shown[5][0]["shown"] = natural
    assert deck_judge.small_figure_text(shown, tmp_path)[0] == []


def test_the_contact_sheet_holds_every_slide(tmp_path):
    import cv2

    shots = []
    for n in range(1, 8):
        cv2.imwrite(str(tmp_path / f"slide-{n:02d}.png"), np.full((720, 1280, 3), 30 * n, np.uint8))
        shots.append((n, tmp_path / f"slide-{n:02d}.png"))
    sheet = cv2.imread(str(deck_judge.contact_sheet(shots, tmp_path / "sheet.png", {3}, columns=4, width=200)))
    assert sheet.shape[:2] == (2 * (112 + 24 + 8), 4 * 208)
    framed = sheet[4 + 40, 208 * 2 + 4 + 1]  # the left edge of slide 3's tile, below its number
    assert tuple(framed) == (0, 0, 220), "a slide with a problem is framed in red"


HAND_MADE = """---
theme: default
routerMode: hash
favicon: ''
fonts:
  provider: none
  sans: 'ui-sans-serif, system-ui, sans-serif'
---

# A slide that reads right

Plain text at the default size.

---

# Too much for one slide

{bullets}

---

# Raw table

<div>
| a | b |
|---|---|
| 1 | 2 |
</div>

---

# Tiny text

<p style="font-size: 6px">these words are far too small to read</p>

---

# A shrunken figure

<img src="/figures/grid.png" style="width: 120px" />
"""


@pytest.mark.full
def test_check_render_fails_on_a_deck_made_to_overflow(tmp_path):
    """Slide 1 is clean; 2 overflows, 3 shows a raw table, 4's text is under the floor in the PDF, 5 shrinks a
    figure's captions under it. The clean slide draws no problem."""
    import check_render

    slides = tmp_path / "slides"
    (slides / "public" / "figures").mkdir(parents=True)
    (slides / "slides.md").write_text(HAND_MADE.format(bullets="\n".join(f"- bullet {i}" for i in range(30))))
    tiles = [np.full((16, 16, 3), 128, np.uint8)] * 4
    figures.image_grid(tiles, ["a", "b", "c", "d"], "grid", slides / "public" / "figures" / "grid.png", columns=2)
    env = {**os.environ, "JITI_FS_CACHE": "false"}
    for command in (["build", str(slides / "slides.md"), "--out", "dist"],
                    ["export", str(slides / "slides.md"), "--output", str(slides / "deck.pdf"),
                     "--executable-path", "/usr/bin/chromium", "--timeout", "60000"]):
        done = subprocess.run(["npx", "--no-install", "slidev", *command], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result, problems = check_render.check_slides(slides / "dist", slides / "deck.pdf", tmp_path / "shots")
    assert result["slides"] == 5
    by_slide = {n: [p for p in problems if p.startswith((f"slide {n}:", f"PDF page {n}:"))] for n in range(1, 6)}
    assert by_slide[1] == [], problems
    assert any("runs" in p and "off the slide" in p for p in by_slide[2]), problems
    assert any("a markdown table rule" in p for p in by_slide[3]), problems
    assert any(p.startswith("PDF page 4:") and "at 6.0 px" in p for p in by_slide[4]), problems  # set at 6 px
    assert any("grid.png shows its smallest text" in p for p in by_slide[5]), problems
    assert Path(result["contact_sheet"]).is_file()
