"""``python -m augengine`` = the ``augengine`` command."""

from augengine.cli import main

main()
