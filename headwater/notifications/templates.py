"""``{{key}}`` placeholders of the custom webhook: finding them and filling them in.

Pure functions over JSON-like values (strings, lists, dicts): the block checks its templates
with :func:`placeholders` when it is built, and fills them with :func:`render` for each
notification. A string that is exactly one placeholder takes the value itself, so a number
stays a number in a JSON body; inside a longer string the value is written as text.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["placeholders", "render"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


def placeholders(template: Any) -> set[str]:
    """Every placeholder key used anywhere in ``template`` (dict keys included)."""
    found: set[str] = set()
    if isinstance(template, str):
        found.update(_PLACEHOLDER.findall(template))
    elif isinstance(template, dict):
        for key, value in template.items():
            found |= placeholders(key) | placeholders(value)
    elif isinstance(template, (list, tuple)):
        for item in template:
            found |= placeholders(item)
    return found


def render(template: Any, values: dict[str, Any]) -> Any:
    """``template`` with each placeholder replaced by its value from ``values``.

    Raises:
        KeyError: a placeholder has no value (the block checks this when it is built).
    """
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole is not None:
            return values[whole.group(1)]
        return _PLACEHOLDER.sub(lambda match: _text(values[match.group(1)]), template)
    if isinstance(template, dict):
        return {render(key, values): render(value, values) for key, value in template.items()}
    if isinstance(template, (list, tuple)):
        return [render(item, values) for item in template]
    return template


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)
