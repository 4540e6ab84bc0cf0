"""`galseg` — the command line: synth, preprocess, segment, evaluate, train, demo.

Each subcommand lives in ``napari_galseg.commands.<name>`` with ``register(subparsers)`` (adds its
arguments and sets ``func``). Errors the user can fix end the run with one line on stderr and a
non-zero exit status, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

SUBCOMMANDS = ("synth", "preprocess", "segment", "evaluate", "train", "export", "demo")


class CliError(Exception):
    """An error to report as one line (bad input, missing file) with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="galseg",
        description="Find and segment galaxies in survey-size FITS images (napari-galseg).",
    )
    parser.add_argument("--version", action="version", version=f"napari-galseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__package__}.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.commands.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("galseg: interrupted", file=sys.stderr)
        return 130
    except (CliError, FileNotFoundError, FileExistsError, ValueError, KeyError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"galseg {args.command}: error: {message}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
