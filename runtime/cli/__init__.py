"""The `edgembed` command: a thin layer over the Python API.

Every expected failure is an EdgembedError, printed as one line with exit status 2.
Each command group is a module with `register(commands)`; a new one is a new module,
imported and listed in COMMANDS below."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import EdgembedError
from . import bench, encode, export, models, scale, search, serve

# the order `edgembed --help` lists them
COMMANDS = (encode, export, models, search, scale, serve, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgembed", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EdgembedError as exc:
        message = " ".join(str(exc).split())  # one line, even if a library's text has more
        print(f"edgembed: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
