"""`python -m fluxora.cli`: the same as the `fluxora` command."""

import sys

from fluxora.cli import main

sys.exit(main())
