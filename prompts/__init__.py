"""Every word the model reads that is ours, as Jinja2 templates (`*.j2` beside this file).

Each template starts with a header comment listing its variables:
    {#- vars: name, other_name -#}
`render(name, **vars)` renders with StrictUndefined, so a missing variable is an error, never
an empty string.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

TEMPLATE_DIR = Path(__file__).parent
_VARS_RE = re.compile(r"\{#-?\s*vars:([^#]*)-?#\}")


@cache
def _env():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def names() -> list[str]:
    """All template names, e.g. ["system.md.j2"]."""
    return sorted(str(p.relative_to(TEMPLATE_DIR)) for p in TEMPLATE_DIR.rglob("*.j2"))


def declared_vars(name: str) -> list[str]:
    """The variables a template's header says it takes."""
    text = (TEMPLATE_DIR / name).read_text(encoding="utf-8")
    match = _VARS_RE.search(text)
    if not match:
        return []
    return [v.strip() for v in match.group(1).strip().rstrip("-").split(",") if v.strip()]


def render(name: str, **variables: object) -> str:
    return _env().get_template(name).render(**variables)
