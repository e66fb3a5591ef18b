"""An upstream that cannot start: it complains on stderr and exits at once."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    print("fatal: no API key configured", file=sys.stderr)
    sys.exit(3)
