"""Prefect's ``prefect.`` label and resource names are accepted as headwater's."""

from __future__ import annotations

from headwater.events import emit_event, get_bus
from headwater.events.aliases import headwater_label, headwater_labels, headwater_name


def test_prefect_label_names_become_headwater_ones() -> None:
    assert headwater_label("prefect.resource.id") == "headwater.resource.id"
    assert headwater_label("prefect.state-name") == "headwater.state-name"
    assert headwater_label("my.label") == "my.label"


def test_only_resource_kinds_headwater_emits_are_renamed_in_values() -> None:
    assert headwater_name("prefect.flow-run.Completed") == "headwater.flow-run.Completed"
    assert headwater_name("prefect.flow-run.*") == "headwater.flow-run.*"
    assert headwater_name("prefect.deployment.1234") == "headwater.deployment.1234"
    assert headwater_name("prefect.my-own-thing") == "prefect.my-own-thing"
    assert headwater_name("orders.placed") == "orders.placed"


def test_labels_keep_their_values_and_lists_are_renamed_item_by_item() -> None:
    labels = {"prefect.resource.id": ["prefect.flow-run.*", "x"], "team": "data"}
    assert headwater_labels(labels) == {
        "headwater.resource.id": ["headwater.flow-run.*", "x"],
        "team": "data",
    }
    untouched = {"headwater.resource.id": "a"}
    assert headwater_labels(untouched) == untouched


def test_an_event_emitted_with_prefect_labels_is_stored_with_ours() -> None:
    seen = []
    consumer = get_bus().add_consumer(seen.append, lossless=True, name="alias-test")
    try:
        emitted = emit_event(
            "order.placed",
            resource={"prefect.resource.id": "shop.order.7", "prefect.resource.name": "seven"},
            related=[{"prefect.resource.id": "shop.customer.3", "prefect.resource.role": "buyer"}],
        )
        get_bus().flush(timeout=10)
    finally:
        consumer.close()
    assert emitted is not None
    assert emitted.resource.id == "shop.order.7"
    assert emitted.resource.name == "seven"
    assert emitted.related[0].role == "buyer"
    assert any(getattr(e, "id", None) == emitted.id for e in seen)
