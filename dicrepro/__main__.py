import sys

from dicrepro.cli import main

sys.exit(main())
