"""python -m loanpipe.fingerprint"""

import sys

from loanpipe.fingerprint.cli import main

sys.exit(main())
