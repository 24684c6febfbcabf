"""python -m loanpipe.local"""

import sys

from loanpipe.local.runner import main

sys.exit(main())
