"""``python -m gaemi.clients.cli``: the ``gaemi`` command without its console script."""

import sys

from gaemi.clients.cli import main

sys.exit(main())
