"""Rendering action templates: sandboxed, bounded in time, output and the values built."""

from __future__ import annotations

import pytest

from headwater.automations.rendering import render
from headwater.automations.templates import RENDER_MAX_CHARS, TemplateRenderError


def test_a_template_renders_its_context() -> None:
    assert render("run {{ name }} failed", {"name": "etl"}) == "run etl failed"
    assert render("no markup", {}) == "no markup"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ('{{ "x" * 1000000000 }}', "over the budget"),
        ("{{ 2 ** 100000 }}", "exponent 100000 is over 256"),
        ('{% for i in range(99999) %}{{ "y" * 100 }}{% endfor %}', "output over"),
        (
            "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
            "took over 2 s",
        ),
    ],
)
def test_a_template_over_its_budget_fails_with_the_reason(source: str, reason: str) -> None:
    with pytest.raises(TemplateRenderError) as caught:
        render(source, {})
    assert reason in caught.value.error
    assert caught.value.source == source


def test_the_budget_leaves_ordinary_templates_alone() -> None:
    rows = render("{% for i in range(1000) %}{{ i }},{% endfor %}", {})
    assert rows.count(",") == 1000 and len(rows) < RENDER_MAX_CHARS
    assert render('{{ "-" * 80 }}', {}) == "-" * 80
