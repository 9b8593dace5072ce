"""``python -m feeder`` is the ``feeder`` command."""

from feeder.cli import main

main()
