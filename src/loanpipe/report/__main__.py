"""python -m loanpipe.report"""

import sys

from loanpipe.report.builder import main

sys.exit(main())
