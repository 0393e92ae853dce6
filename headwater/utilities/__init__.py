"""Prefect's ``prefect.utilities`` package: the parts user code imports."""
