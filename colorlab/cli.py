"""``python -m colorlab COMMAND``: the command dispatch. Each command's module is imported only when it runs,
so a command that needs neither Lightning nor timm (``colorize --onnx``, ``--help``) starts without them."""

from __future__ import annotations

import gc
import importlib
import sys
from types import ModuleType
from typing import Any

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")

# Commands beyond Lightning's: name -> "module:function" taking argv (imported only when used).
COMMANDS = {
    "experiment": "colorlab.commands.experiment:main",
    "colorize": "colorlab.commands.colorize:main",
    "restore-colorize-upscale": "colorlab.commands.restore_colorize_upscale:main",
    "export": "colorlab.commands.export:main",
    "serve": "colorlab.commands.serve:main",
    "evaluate": "colorlab.commands.evaluate:main",
    "compare": "colorlab.commands.compare:main",
    "prior": "colorlab.commands.prior:main",
    "sweep": "colorlab.commands.sweep:main",
    "data": "colorlab.commands.data:main",
}


def usage() -> str:
    """The top-level help text."""
    names = ", ".join([*LIGHTNING_COMMANDS, *COMMANDS])
    return (
        "usage: python -m colorlab COMMAND [options]\n"
        f"commands: {names}\n"
        "  fit/validate/test/predict --config experiments/X.yaml   Lightning on an experiment YAML\n"
        "  experiment --config experiments/X.yaml [--resume]     fit, test the best checkpoint, write a report\n"
        "Run 'python -m colorlab COMMAND --help' for a command's options."
    )


def import_command(module_name: str, freeze: bool) -> ModuleType:
    """Import a command's module, and torch, numpy... with it, with the garbage collector paused.

    Importing torch makes ~430,000 objects that live as long as the process, and Python's full collections
    walk them all, again and again while they are made, during the command and at exit: 0.6 s of the 3 s a
    one-shot ``colorize`` of a 12 MP photo may take on 2 cores. None runs during the import, and ``freeze``
    (the program's own run, not a call from tests or a notebook) moves what exists then, the libraries, out
    of every later collection (``gc.freeze``).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return importlib.import_module(module_name)
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


def main(argv: list[str] | None = None) -> Any:
    """Entry point of ``python -m colorlab`` and the ``colorlab`` script (``argv`` None: the program's own run)."""
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return None
    command, rest = argv[0], argv[1:]
    if command in LIGHTNING_COMMANDS:
        from colorlab.data.images import DataFolderError
        from colorlab.runs.folder import NothingToResume
        from colorlab.training.cli import lightning_main
        from colorlab.training.devices import GpuUnusable

        try:
            return lightning_main(argv)
        except (NothingToResume, GpuUnusable, DataFolderError, FileNotFoundError) as exc:  # say so, exit 1
            raise SystemExit(f"error: {exc}") from None
    if command in COMMANDS:
        module_name, function = COMMANDS[command].split(":")
        return getattr(import_command(module_name, freeze=as_program), function)(rest)
    print(f"unknown command {command!r}\n\n{usage()}", file=sys.stderr)
    raise SystemExit(2)
