"""python -m loanpipe.local"""

import sys

from loanpipe.local.command import main

sys.exit(main())
