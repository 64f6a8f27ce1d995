"""Issue 28 item 11: a figure the README or docs/ say was measured names when (a date: YYYY-MM-DD, or the month of
a re-measure on the current code), so a figure measured on code that has since changed can be told from a current
one; and the demo figures measured before the frames skip are gone."""
from __future__ import annotations

import re

from helpers.paths import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
DATED = re.compile(r"\b20\d\d-\d\d-\d\d\b|\((?:January|February|March|April|May|June|July|August|September|October|"
                   r"November|December) 20\d\d\b")
# "measured" as a claim that figures were measured, not in "not measured", "to be measured", the benchmark's
# "published versus measured" (its column of figures measured on the user's test set), a TOML note
CLAIM = re.compile(r"(?<!not )(?<!be )(?<!-)(?<!versus )\b[Mm]easured\b(?! on\"| on the test set| video AUC| figure of| -)")


def _paragraphs(text: str):
    """Paragraphs and list items outside code blocks, headings left out."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    for block in re.split(r"\n\s*\n|\n(?=\s*- )", text):
        if block.strip() and not block.lstrip().startswith("#"):
            yield " ".join(block.split())


def test_every_measured_figure_says_when():
    undated = [f"{path.name}: {para[:160]}" for path in DOCS for para in _paragraphs(path.read_text())
               if CLAIM.search(para) and not DATED.search(para)]
    assert not undated, "\n".join(undated)


def test_the_demo_figures_from_before_the_frames_skip_are_gone():
    readme = (REPO / "README.md").read_text()
    for stale in ("for 73% of val fakes", "0.85-0.95 val balanced accuracy", "in 80% of the 162 val fake faces",
                  "balanced accuracy 0.997"):
        assert stale not in readme, stale
