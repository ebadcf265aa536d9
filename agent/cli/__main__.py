"""`python -m agent.cli ...`: the same as the `flashcode` console script."""

import sys

from agent.cli.main import main

sys.exit(main())
