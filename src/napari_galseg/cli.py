"""`galseg` — the command line: synth, describe, preprocess, segment, evaluate, train, jobs, demo.

Each subcommand lives in ``napari_galseg.commands.<name>`` with ``register(subparsers)`` (adds its
arguments and sets ``func``). Errors the user can fix end the run with one line on stderr and a
non-zero exit status, never a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import warnings

from . import __version__

SUBCOMMANDS = ("synth", "describe", "preprocess", "segment", "evaluate", "train", "models", "jobs", "export", "study",
               "demo")


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


@contextlib.contextmanager
def _stop_signals_interrupt():
    """SIGTERM and SIGHUP end a run like Ctrl-C: as KeyboardInterrupt, so the atomic writers
    remove their temporary files and the user's files stay as they were."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            previous[signum] = signal.signal(signum, interrupt)
        except ValueError:  # not the main thread (main() called from a worker): leave them be
            pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _one_line_warnings(command: str):
    """Warnings print as ``galseg CMD: warning: message`` (one line, no source line)."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"galseg {command}: warning: {text}", file=file or sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def _message(exc: BaseException) -> str:
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(message).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _stop_signals_interrupt(), _one_line_warnings(args.command):
            result = args.func(args)
    except KeyboardInterrupt as exc:
        print(f"galseg: interrupted{f' ({exc})' if str(exc) else ''}; no output was left half-written",
              file=sys.stderr)
        return 130
    except (CliError, FileNotFoundError, FileExistsError, ValueError, KeyError, OSError, OverflowError) as exc:
        if os.environ.get("GALSEG_DEBUG"):
            raise
        print(f"galseg {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"galseg {args.command}: error: out of memory; use a smaller image, tiles or fewer workers",
              file=sys.stderr)
        return 2
    except Exception as exc:  # the last net: one line, never a traceback
        if os.environ.get("GALSEG_DEBUG"):
            raise
        print(f"galseg {args.command}: error: unexpected {type(exc).__name__}: {_message(exc)} "
              "(a bug: please report it; GALSEG_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    # `python -m napari_galseg.cli` runs this file as __main__: use the package's module, whose
    # CliError is the one the commands raise (a second copy of the class would not match)
    from napari_galseg.cli import main as _main

    sys.exit(_main())
