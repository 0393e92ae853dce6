"""Resource specifications and event-name patterns, compiled once per trigger.

A trigger's ``match`` / ``match_related`` specs follow Prefect's server-side rules
(reference §3.5): a spec maps a label to a value or a list of values; values in a list are
OR-ed, labels are AND-ed, an empty spec matches everything. A value is a case-sensitive
glob (``fnmatch``: ``*``, ``?``, ``[...]``) and a leading ``!`` negates it. A missing label
never matches, not even a negated value.

Prefect re-interprets every glob for every event against every trigger (complaint #9). Here
each value is compiled when the automation is loaded into the cheapest test that decides it:
an equality, a ``startswith`` for ``prefix*``, or a compiled regular expression only for real
globs. Event-name patterns (``expect``/``after``) are exact names, ``prefix*`` or globs.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence

from headwater.events.schema import Event

__all__ = [
    "CompiledSpec",
    "NamePattern",
    "compile_spec",
    "compile_related",
    "check_glob",
    "parse_name_pattern",
]

_GLOB_CHARS = frozenset("*?[")

Matcher = Callable[[str], bool]


def check_glob(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable glob, or None when it is.

    ``fnmatch`` never rejects a pattern: an unclosed ``[`` silently becomes a literal, which
    is how a typo turns into a trigger that never fires. Definitions are checked with this.
    """
    body = pattern[1:] if pattern.startswith("!") else pattern
    if not body:
        return "is empty" if not pattern else "negates nothing ('!' alone)"
    index = 0
    while index < len(body):
        if body[index] == "[":
            close = body.find("]", index + 2)  # "[]]" is a class holding "]"
            if close == -1:
                return f"has an unclosed '[' at position {index}"
            index = close
        index += 1
    return None


def _value_matcher(value: str) -> Matcher:
    if not (_GLOB_CHARS & set(value)):
        return value.__eq__
    stem = value[:-1]
    if value.endswith("*") and not (_GLOB_CHARS & set(stem)):
        return lambda text: text.startswith(stem)
    return re.compile(fnmatch.translate(value)).match  # type: ignore[return-value]


class _Label:
    """One label of a spec: OR over its values, each possibly negated."""

    __slots__ = ("label", "exact", "tests")

    def __init__(self, label: str, values: Sequence[str]) -> None:
        self.label = label
        # The frequent case, one plain positive value, is a single string comparison.
        single = values[0] if len(values) == 1 else None
        self.exact: str | None = (
            single
            if single is not None and not (_GLOB_CHARS & set(single) or single[:1] == "!")
            else None
        )
        self.tests: tuple[tuple[bool, Matcher], ...] = tuple(
            (True, _value_matcher(v[1:])) if v.startswith("!") else (False, _value_matcher(v))
            for v in values
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.label)
        if value is None:
            return False
        if self.exact is not None:
            return value == self.exact
        return any(bool(test(value)) is not negated for negated, test in self.tests)


class CompiledSpec:
    """A resource spec, ready to test a resource's labels; an empty spec matches anything."""

    __slots__ = ("labels", "source")

    def __init__(self, source: Mapping[str, str | list[str]]) -> None:
        self.source = dict(source)
        self.labels = tuple(
            _Label(label, [value] if isinstance(value, str) else list(value))
            for label, value in source.items()
        )

    def __bool__(self) -> bool:
        return bool(self.labels)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` meet every label of the spec."""
        return all(label.matches(labels) for label in self.labels)

    def includes(self, candidates: Sequence[Mapping[str, str]]) -> bool:
        """Whether some candidate resource meets the spec (an empty spec: always)."""
        if not self.labels:
            return True
        return any(self.matches(candidate) for candidate in candidates)

    def exact_value(self, label: str) -> str | None:
        """The one plain value this spec requires for ``label``, if it requires exactly one."""
        for compiled in self.labels:
            if compiled.label == label:
                return compiled.exact
        return None


def compile_spec(spec: Mapping[str, str | list[str]]) -> CompiledSpec:
    """Compile one spec (see the module docstring); validate it first with :func:`check_glob`."""
    return CompiledSpec(spec)


def compile_related(
    specs: Mapping[str, str | list[str]] | Sequence[Mapping[str, str | list[str]]],
) -> tuple[CompiledSpec, ...]:
    """Compile ``match_related``: one spec or a list, each to be met by some related resource."""
    if isinstance(specs, Mapping):
        specs = [specs]
    return tuple(compiled for compiled in map(CompiledSpec, specs) if compiled)


class NamePattern:
    """An event-name pattern: an exact name, a ``prefix*`` or any other glob.

    Attributes:
        kind: ``"exact"``, ``"prefix"`` or ``"glob"``; ``"*"`` alone is a prefix of "".
        text: the name, the prefix, or the glob as written.
    """

    __slots__ = ("kind", "text", "test")

    def __init__(self, kind: str, text: str, test: Matcher) -> None:
        self.kind = kind
        self.text = text
        self.test = test

    def __repr__(self) -> str:
        return f"NamePattern({self.kind}, {self.text!r})"


def parse_name_pattern(pattern: str) -> NamePattern:
    """Classify and compile one ``expect``/``after`` pattern."""
    if not (_GLOB_CHARS & set(pattern)):
        return NamePattern("exact", pattern, pattern.__eq__)
    stem = pattern[:-1]
    if pattern.endswith("*") and not (_GLOB_CHARS & set(stem)):
        return NamePattern("prefix", stem, lambda name: name.startswith(stem))
    return NamePattern("glob", pattern, re.compile(fnmatch.translate(pattern)).match)  # type: ignore[arg-type]


def names_match(patterns: Sequence[NamePattern], name: str) -> bool:
    """Whether ``name`` matches one of ``patterns``."""
    return any(pattern.test(name) for pattern in patterns)


def covers_resources(match: CompiledSpec, related: Sequence[CompiledSpec], event: Event) -> bool:
    """Whether ``event``'s primary resource meets ``match`` and each related spec is met."""
    if match.labels and not match.matches(event.resource):
        return False
    return all(spec.includes(event.related) for spec in related)
