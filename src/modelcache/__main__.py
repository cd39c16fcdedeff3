"""`python -m modelcache` is the `modelcache` command."""

import sys

from modelcache.cli import main

sys.exit(main())
