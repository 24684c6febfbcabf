"""python -m loanpipe.pool"""

import sys

from loanpipe.pool.commands import main

sys.exit(main())
