"""``python -m a2i_worker.cli``: the same as the ``a2i-worker`` command."""

from a2i_worker.cli import main

main()
