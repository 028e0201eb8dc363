"""The deck's templates stay readable: slides.md.j2 includes one partial per section (templates/slides/), each short,
with no line over 200 characters; a long line is split with the run-on comment, which leaves the deck unchanged."""

import re

from report.render import TEMPLATES, environment

PARTIALS = TEMPLATES / "slides"


def test_the_deck_includes_every_partial_once_and_each_is_short():
    included = re.findall(r'{% include "slides/([^"]+)" %}', (TEMPLATES / "slides.md.j2").read_text())
    assert sorted(included) == sorted(p.name for p in PARTIALS.glob("*.md.j2")), "a partial no slide includes"
    for path in [TEMPLATES / "slides.md.j2", *PARTIALS.glob("*.md.j2")]:
        lines = path.read_text().splitlines()
        assert len(lines) <= 250, f"{path.name}: {len(lines)} lines; split it"
        long = [n for n, line in enumerate(lines, 1) if len(line) > 200]
        assert not long, f"{path.name}: lines {long} over 200 characters; end a piece with {{##}} to run on"


def test_the_run_on_comment_joins_two_lines_and_stands_only_at_a_line_s_end():
    env = environment(autoescape=False)
    assert env.from_string("at most {##}\n{{ n }} images\n").render(n=3) == "at most 3 images\n"
    for path in PARTIALS.glob("*.md.j2"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            assert "{##}" not in line or line.endswith("{##}"), f"{path.name}:{n}: {{##}} inside a line"
