"""The README's demo: ``python -m headwater.demo`` (the same as ``headwater demo``)."""
