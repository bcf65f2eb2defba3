import sys

from edge_agent.tools.cli import main

sys.exit(main())
