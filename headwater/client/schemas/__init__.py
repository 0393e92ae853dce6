"""Prefect's ``prefect.client.schemas`` package: the shapes of runs and schedules."""
