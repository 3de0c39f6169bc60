"""`python -m corral.examples.cassandra`: see corral.examples.cassandra.cli."""
import sys

from corral.examples.cassandra.cli import main

sys.exit(main())
