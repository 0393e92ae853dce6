"""``python -m headwater.demo``: run the README's demo (see :mod:`headwater.cli.demo`)."""

from headwater.cli.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
