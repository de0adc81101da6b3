"""The old name of `t2i-keras train` (same flags; see `t2i-keras train --help`)."""

import sys

from t2i_keras.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
