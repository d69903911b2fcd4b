"""The ``triostream`` command line."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``triostream`` and ``python -m triostream``."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["demo"]:
        print("triostream demo: coming soon (the scripted conversation lands with the CLI issue).")
        return 0
    print("usage: triostream demo", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
