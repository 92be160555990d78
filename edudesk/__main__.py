"""`python -m edudesk`: the `edudesk` command."""

import sys

from edudesk.app import cli

if __name__ == "__main__":
    sys.exit(cli())
