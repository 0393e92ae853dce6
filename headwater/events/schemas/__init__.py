"""Prefect's ``prefect.events.schemas`` package: events, automations, deployment triggers."""
