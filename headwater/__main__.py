"""``python -m headwater``: the same as the ``headwater`` command."""

from headwater.cli.app import main

if __name__ == "__main__":
    main()
