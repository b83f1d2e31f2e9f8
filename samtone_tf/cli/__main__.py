"""``python -m samtone_tf.cli``: the ``samtone`` command."""

import sys

from samtone_tf.cli.main import main

sys.exit(main())
