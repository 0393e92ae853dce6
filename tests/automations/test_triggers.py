"""Pure trigger evaluation on a fake clock: no loop, no sleeps, no database."""

from __future__ import annotations

from automation_helpers import Driver, make_event

from headwater.automations import CompoundTrigger, EventTrigger, Posture, SequenceTrigger


def test_reactive_fires_when_threshold_is_reached_within_the_window() -> None:
    driver = Driver(EventTrigger(expect=["order.failed"], threshold=3, within=60))
    assert not driver.send(make_event("order.failed", 0))
    assert not driver.send(make_event("order.failed", 10))
    fired = driver.send(make_event("order.failed", 20))
    assert [f.state for f in fired] == ["triggered"]
    assert fired[0].event is not None and fired[0].event.event == "order.failed"


def test_reactive_fires_at_most_once_per_window() -> None:
    driver = Driver(EventTrigger(expect=["x"], threshold=1, within=60))
    assert driver.send(make_event("x", 0))
    assert not driver.send(make_event("x", 30))  # same window: already fired
    assert driver.send(make_event("x", 61))  # next window


def test_reactive_threshold_not_reached_inside_the_window_does_not_fire() -> None:
    driver = Driver(EventTrigger(expect=["x"], threshold=2, within=10))
    assert not driver.send(make_event("x", 0))
    assert not driver.send(make_event("x", 15))  # the first one's window has closed


def test_immediate_trigger_fires_on_every_event() -> None:
    driver = Driver(EventTrigger(expect=["x"]))
    assert driver.send(make_event("x", 0))
    assert driver.send(make_event("x", 0.1))


def test_for_each_keeps_a_bucket_per_label_value() -> None:
    trigger = EventTrigger(expect=["x"], for_each=["headwater.resource.id"], threshold=2, within=60)
    driver = Driver(trigger)
    assert not driver.send(make_event("x", 0, resource="a"))
    assert not driver.send(make_event("x", 1, resource="b"))
    fired = driver.send(make_event("x", 2, resource="a"))
    assert [f.labels for f in fired] == [{"headwater.resource.id": "a"}]


def test_match_and_match_related_filter_events() -> None:
    trigger = EventTrigger(
        expect=["x"],
        match={"headwater.resource.id": "order.*", "env": "!dev"},
        match_related={"headwater.resource.role": "tag", "headwater.resource.id": "*.prod"},
    )
    driver = Driver(trigger)
    prod = [{"headwater.resource.id": "tag.prod", "headwater.resource.role": "tag"}]
    assert not driver.send(make_event("x", 0, resource="user.1", related=prod))
    assert not driver.send(make_event("x", 0, resource="order.1", labels={"env": "dev"}))
    assert not driver.send(make_event("x", 0, resource="order.1", labels={"env": "prd"}))
    assert driver.send(make_event("x", 0, resource="order.1", labels={"env": "prd"}, related=prod))


def test_after_opens_the_window_and_expect_counts() -> None:
    driver = Driver(EventTrigger(after=["start"], expect=["step"], threshold=2, within=60))
    assert not driver.send(make_event("step", 0))  # no window yet
    assert not driver.send(make_event("step", 1))
    assert not driver.send(make_event("start", 2))
    assert not driver.send(make_event("step", 3))
    assert driver.send(make_event("step", 4))
    assert not driver.send(make_event("step", 5))  # fired: waits for the next `start`


def test_an_event_in_both_after_and_expect_cannot_satisfy_itself() -> None:
    driver = Driver(EventTrigger(after=["x"], expect=["x"], threshold=1, within=60))
    assert not driver.send(make_event("x", 0))
    assert driver.send(make_event("x", 1))


def test_proactive_fires_after_the_window_when_the_event_does_not_come() -> None:
    trigger = EventTrigger(
        after=["run.Running"],
        expect=["run.Completed"],
        for_each=["headwater.resource.id"],
        posture=Posture.Proactive,
        threshold=1,
        within=30,
    )
    driver = Driver(trigger)
    driver.send(make_event("run.Running", 0, resource="run.1"))
    assert not driver.tick(29.9)
    fired = driver.tick(30)
    assert [(f.state, f.labels) for f in fired] == [
        ("triggered", {"headwater.resource.id": "run.1"})
    ]
    assert fired[0].event is not None and fired[0].event.event == "run.Running"
    assert not driver.tick(300)  # once


def test_proactive_does_not_fire_when_the_event_arrives_in_time() -> None:
    trigger = EventTrigger(
        after=["run.Running"],
        expect=["run.Completed"],
        for_each=["headwater.resource.id"],
        posture=Posture.Proactive,
        within=30,
    )
    driver = Driver(trigger)
    driver.send(make_event("run.Running", 0, resource="run.1"))
    driver.send(make_event("run.Running", 0, resource="run.2"))
    driver.send(make_event("run.Completed", 10, resource="run.1"))
    fired = driver.tick(31)
    assert [f.labels["headwater.resource.id"] for f in fired] == ["run.2"]


def test_proactive_resolves_when_the_expected_event_finally_comes() -> None:
    trigger = EventTrigger(
        after=["run.Running"],
        expect=["run.Completed"],
        for_each=["headwater.resource.id"],
        posture=Posture.Proactive,
        within=30,
    )
    driver = Driver(trigger)
    driver.send(make_event("run.Running", 0, resource="run.1"))
    driver.tick(31)
    resolved = driver.send(make_event("run.Completed", 40, resource="run.1"))
    assert [f.state for f in resolved] == ["resolved"]


def test_proactive_heartbeat_window_restarts_at_each_heartbeat() -> None:
    trigger = EventTrigger(
        after=["beat"],
        expect=["beat", "done"],
        for_each=["headwater.resource.id"],
        posture=Posture.Proactive,
        within=90,
    )
    driver = Driver(trigger)
    for at in (0, 60, 120, 180):
        driver.send(make_event("beat", at))
        assert not driver.tick(at + 59)
    assert driver.tick(270)  # 90 s after the last heartbeat
    driver.send(make_event("beat", 300))
    driver.send(make_event("done", 310))  # finished: the window closes quietly
    assert not driver.tick(500)


def test_proactive_without_after_or_for_each_watches_the_whole_stream() -> None:
    driver = Driver(EventTrigger(expect=["tick"], posture=Posture.Proactive, within=60))
    driver.send(make_event("tick", 30))
    assert not driver.tick(60)
    assert driver.tick(120)  # nothing in the second window


def test_proactive_within_is_raised_to_the_minimum() -> None:
    driver = Driver(EventTrigger(expect=["x"], posture=Posture.Proactive), minimum=10)
    assert not driver.tick(9.9)
    assert driver.tick(10)


def test_compound_all_fires_once_every_child_fired() -> None:
    driver = Driver(
        CompoundTrigger(
            require="all",
            within=60,
            triggers=[EventTrigger(expect=["a"]), EventTrigger(expect=["b"])],
        )
    )
    assert not driver.send(make_event("a", 0))
    assert not driver.send(make_event("a", 1))
    fired = driver.send(make_event("b", 2))
    assert len(fired) == 1 and len(fired[0].children) == 2
    assert not driver.send(make_event("b", 3))  # stored firings were cleared


def test_compound_any_fires_at_once_and_n_counts_distinct_children() -> None:
    any_of = Driver(
        CompoundTrigger(
            require="any", triggers=[EventTrigger(expect=["a"]), EventTrigger(expect=["b"])]
        )
    )
    assert any_of.send(make_event("b", 0))
    two = Driver(
        CompoundTrigger(
            require=2,
            triggers=[EventTrigger(expect=[n]) for n in ("a", "b", "c")],
        )
    )
    assert not two.send(make_event("a", 0))
    assert not two.send(make_event("a", 1))
    assert two.send(make_event("c", 2))


def test_compound_within_forgets_old_child_firings() -> None:
    driver = Driver(
        CompoundTrigger(
            within=10, triggers=[EventTrigger(expect=["a"]), EventTrigger(expect=["b"])]
        )
    )
    driver.send(make_event("a", 0))
    assert not driver.send(make_event("b", 11))
    assert driver.send(make_event("a", 12))


def test_sequence_fires_only_in_order() -> None:
    trigger = SequenceTrigger(
        within=60, triggers=[EventTrigger(expect=["first"]), EventTrigger(expect=["second"])]
    )
    driver = Driver(trigger)
    assert not driver.send(make_event("second", 0))
    assert not driver.send(make_event("first", 1))  # second came before first
    assert driver.send(make_event("second", 2))


def test_nested_composites() -> None:
    trigger = SequenceTrigger(
        triggers=[
            CompoundTrigger(
                require="any", triggers=[EventTrigger(expect=["a"]), EventTrigger(expect=["b"])]
            ),
            EventTrigger(expect=["c"]),
        ]
    )
    driver = Driver(trigger)
    driver.send(make_event("b", 0))
    assert driver.send(make_event("c", 1))


def test_prefix_and_glob_event_patterns() -> None:
    driver = Driver(EventTrigger(expect=["headwater.flow-run.*", "job.?.done"]))
    assert driver.send(make_event("headwater.flow-run.Failed", 0))
    assert driver.send(make_event("job.7.done", 1))
    assert not driver.send(make_event("job.77.done", 2))
