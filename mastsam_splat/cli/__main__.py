"""``python -m mastsam_splat.cli``: the ``mastsam`` command."""

from mastsam_splat.cli import main

main()
