"""The old name of `t2i-keras embed` (same flags; see `t2i-keras embed --help`)."""

import sys

from t2i_keras.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["embed", *sys.argv[1:]]))
