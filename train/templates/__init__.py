"""The template files of every page and card the trainer writes (Jinja2), and the one stylesheet the pages inline.

HTML templates (`*.html.j2`) render with autoescape on; Markdown ones (`*.md.j2`) without. Pages stay one
self-contained file: `stylesheet()` is inlined into each, images are data URIs, nothing is fetched."""
from __future__ import annotations

import functools
import html
import math
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

STYLESHEET = "page.css"


def fmt(value: Any, digits: int = 4) -> str:
    """A number as the pages show it: `digits` decimals for a float, n/a for a missing or undefined value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def number(value: Any) -> Any:
    """CSV strings back to numbers for formatting (ints stay ints; an empty string is missing)."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value if value else None
    return value


def text(value: Any) -> Markup:
    """Escaped as element text (quotes kept as they are, so a JSON block reads as JSON in the source too)."""
    return Markup(html.escape(str(value), quote=False))


@functools.cache
def _environment(is_html: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("train", "templates"), autoescape=is_html,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=fmt, number=number, text=text)
    return env


@functools.cache
def stylesheet() -> str:
    """The one stylesheet of the trainer's pages (train/templates/page.css)."""
    return resources.files("train").joinpath("templates", STYLESHEET).read_text(encoding="utf-8")


def render(template: str, **values: Any) -> str:
    """Render the template file `template` (HTML-escaped when it ends in .html.j2); pages get `stylesheet` too."""
    is_html = template.endswith(".html.j2")
    if is_html:
        values.setdefault("stylesheet", Markup(stylesheet()))
    return _environment(is_html).get_template(template).render(**values)
