"""``python -m ntm_fast.train TASK ...`` (and ``torchrun ... -m ntm_fast.train TASK ...``):
the same command as ``ntm-fast train TASK ...``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
