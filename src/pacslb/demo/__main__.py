import sys

from .services import main

sys.exit(main())
