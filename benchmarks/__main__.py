"""`python -m edgembed.bench ...` is `edgembed bench ...`."""

import sys

from edgembed.cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
