"""The README stays a README (at most 300 lines, opening with the two commands a new user runs), and every link
between it and docs/ lands on a file and a heading that exist: moved text leaves no dangling link."""

import re

from helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_is_short_and_opens_with_make_deck_and_make_test():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines: move records to docs/"
    opening = "\n".join(lines[:6])
    assert "make deck " in opening and "make test " in opening


def test_every_link_between_the_readme_and_docs_lands():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]*\.md)?(?:#([^)]+))?\)", page.read_text()):
            name, fragment = target
            if not name and not fragment:
                continue
            linked = (page.parent / name).resolve() if name else page
            assert linked.exists(), f"{page.name} links to {name}, which does not exist"
            if fragment:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
                assert fragment in {anchor(h) for h in headings}, f"{page.name}: no heading #{fragment} in {linked.name}"
