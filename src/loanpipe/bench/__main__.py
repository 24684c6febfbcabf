"""python -m loanpipe.bench"""

import sys

from loanpipe.bench.cli import main

sys.exit(main())
