"""``python -m regbench …`` is the ``regbench`` command."""
from .cli import main

main()
