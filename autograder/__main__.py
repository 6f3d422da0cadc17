"""`python -m autograder grade|batch`: the command line (autograder/frontends/cli.py)."""
import sys

from autograder.frontends.cli import main

if __name__ == "__main__":
    sys.exit(main())
