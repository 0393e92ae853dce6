"""Which event triggers an event name concerns, without visiting the others (complaint #9).

Every event trigger is filed under the event-name patterns of its ``expect`` and ``after``:

- exact names in a dict (one lookup);
- ``prefix*`` patterns, and other globs by their literal start (``job.?.done`` under
  ``job.``), in a table keyed by prefix length, then by prefix: an event name is cut at
  each distinct prefix length (a handful) and each cut is one dict lookup, so the cost
  does not grow with the number of triggers; a glob is then tested on the name;
- triggers with no ``expect`` (they expect any event) under the empty name pattern.

Under each name pattern, triggers are filed again by the ``headwater.resource.id`` their
``match`` requires (one plain value, or one ``prefix*``), the same way; an event reaches
only those whose id requirement it meets, plus those without one. Only the candidates
that come out are matched against their full resource specs. Automations rarely
change, so the index is rebuilt whole when they do; lookups never take a lock.

Loop guard: events about automations themselves (``headwater.automation.*``: triggered,
resolved, action.*) reach only triggers that name ``headwater.automation...`` explicitly
(an exact name, a prefix or a glob starting with it). A trigger that expects *any* event
would otherwise fire on its own ``automation.triggered`` event, and again, forever.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from headwater.automations.triggers import EventTriggerNode
from headwater.events.schema import RESOURCE_ID

__all__ = ["TriggerIndex", "AUTOMATION_EVENT_PREFIX"]

AUTOMATION_EVENT_PREFIX = "headwater.automation."
_SELF = "headwater.automation"


class _ByResource:
    """The triggers filed under one name pattern, split again by the resource id they need.

    A trigger whose ``match`` requires one plain or ``prefix*`` value of
    ``headwater.resource.id`` is reached only through that id, so an event about another
    resource never visits it; the others are always candidates.
    """

    __slots__ = ("exact", "prefixes", "lengths", "rest")

    def __init__(self, entries: list[tuple[EventTriggerNode, Any]]) -> None:
        exact: dict[str, list[tuple[EventTriggerNode, Any]]] = {}
        prefixes: dict[int, dict[str, list[tuple[EventTriggerNode, Any]]]] = {}
        rest: list[tuple[EventTriggerNode, Any]] = []
        for node, test in entries:
            wanted = node.match.exact_value(RESOURCE_ID)
            pattern = _single_pattern(node, RESOURCE_ID)
            if wanted is not None:
                exact.setdefault(wanted, []).append((node, test))
            elif pattern is not None:
                table = prefixes.setdefault(len(pattern), {})
                table.setdefault(pattern, []).append((node, test))
            else:
                rest.append((node, test))
        self.exact = {key: tuple(value) for key, value in exact.items()}
        self.prefixes = {
            length: {key: tuple(value) for key, value in table.items()}
            for length, table in prefixes.items()
        }
        self.lengths = tuple(sorted(prefixes))
        self.rest = tuple(rest)

    def select(self, name: str, resource_id: str, found: list[EventTriggerNode]) -> None:
        hit = self.exact.get(resource_id)
        if hit:
            _take(hit, name, found)
        for length in self.lengths:
            if length > len(resource_id):
                break
            hit = self.prefixes[length].get(resource_id[:length])
            if hit:
                _take(hit, name, found)
        if self.rest:
            _take(self.rest, name, found)


def _take(
    entries: tuple[tuple[EventTriggerNode, Any], ...], name: str, found: list[EventTriggerNode]
) -> None:
    for node, test in entries:
        if test is None or test(name):
            found.append(node)


def _single_pattern(node: EventTriggerNode, label: str) -> str | None:
    """The prefix of a single positive ``prefix*`` value the spec needs for ``label``."""
    value = node.match.source.get(label)
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    if not isinstance(value, str) or value.startswith("!") or not value.endswith("*"):
        return None
    stem = value[:-1]
    return None if any(char in stem for char in "*?[") else stem


def _literal_prefix(glob: str) -> str:
    for index, char in enumerate(glob):
        if char in "*?[":
            return glob[:index]
    return glob


class TriggerIndex:
    """An immutable index of event triggers by event-name pattern, then by resource id."""

    __slots__ = ("_exact", "_prefixes", "_lengths", "_anything", "size")

    def __init__(self, nodes: Iterable[EventTriggerNode] = ()) -> None:
        exact: dict[str, list[tuple[EventTriggerNode, Any]]] = {}
        prefixes: dict[int, dict[str, list[tuple[EventTriggerNode, Any]]]] = {}
        anything: list[tuple[EventTriggerNode, Any]] = []
        size = 0
        for node in nodes:
            size += 1
            if not node.expect:
                anything.append((node, None))
                continue
            for pattern in (*node.expect, *node.after):
                if pattern.kind == "exact":
                    _add(exact.setdefault(pattern.text, []), node, None)
                    continue
                # A glob is filed under its literal start and tested on the way out.
                stem = pattern.text if pattern.kind == "prefix" else _literal_prefix(pattern.text)
                test = None if pattern.kind == "prefix" else pattern.test
                if test is not None and not stem.startswith(_SELF):
                    test = _not_own(test)
                table = prefixes.setdefault(len(stem), {})
                _add(table.setdefault(stem, []), node, test)
        self._exact = {name: _ByResource(found) for name, found in exact.items()}
        self._prefixes = {
            length: {prefix: _ByResource(found) for prefix, found in table.items()}
            for length, table in prefixes.items()
        }
        self._lengths = tuple(sorted(prefixes))
        self._anything = _ByResource(anything) if anything else None
        self.size = size

    def candidates(self, name: str, resource_id: str = "") -> list[EventTriggerNode]:
        """The triggers whose name patterns ``name`` may match and whose resource-id
        requirement (if any) ``resource_id`` meets, each once, in filing order.

        A trigger listed here still has to pass its resource specs (``node.covers``).
        """
        own = name.startswith(AUTOMATION_EVENT_PREFIX)
        found: list[EventTriggerNode] = []
        hit = self._exact.get(name)
        if hit is not None:
            hit.select(name, resource_id, found)
        if self._lengths:
            length_of_name = len(name)
            prefixes = self._prefixes
            for length in self._lengths:
                if length > length_of_name:
                    break
                if own and length < len(_SELF):
                    continue
                hit = prefixes[length].get(name[:length])
                if hit is not None:
                    hit.select(name, resource_id, found)
        if self._anything is not None and not own:
            self._anything.select(name, resource_id, found)
        if len(found) > 1:
            return list(dict.fromkeys(found))
        return found

    def __len__(self) -> int:
        return self.size


def _not_own(test: Any) -> Any:
    # a glob that does not name headwater.automation... never matches automation events
    return lambda name: not name.startswith(AUTOMATION_EVENT_PREFIX) and test(name)


def _add(entries: list[tuple[EventTriggerNode, Any]], node: EventTriggerNode, test: Any) -> None:
    if not entries or entries[-1][0] is not node:
        entries.append((node, test))
