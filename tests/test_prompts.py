"""Every template renders with the variables its header declares, and only with them."""

from __future__ import annotations

import jinja2
import pytest

import prompts


def test_there_are_templates():
    assert "system.md.j2" in prompts.names()


@pytest.mark.parametrize("name", prompts.names())
def test_template_renders_with_its_declared_vars(name):
    header = prompts._VARS_RE.search((prompts.TEMPLATE_DIR / name).read_text(encoding="utf-8"))
    assert header, f"{name} has no '{{#- vars: ... -#}}' header"
    names = prompts.declared_vars(name)  # may be empty: a tool description takes no variables
    text = prompts.render(name, **{v: f"<{v}>" for v in names})
    assert text.strip()
    assert "{{" not in text and "{%" not in text


@pytest.mark.parametrize("name", [n for n in prompts.names() if prompts.declared_vars(n)])
def test_template_fails_on_a_missing_variable(name):
    names = prompts.declared_vars(name)
    with pytest.raises(jinja2.UndefinedError):
        prompts.render(name, **{v: "x" for v in names[1:]})
