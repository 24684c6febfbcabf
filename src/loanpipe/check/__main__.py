"""python -m loanpipe.check"""

import sys

from loanpipe.check.offline import main

sys.exit(main())
