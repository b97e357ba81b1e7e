"""The CLI's one error boundary and one output check, applied to every command.

:class:`HumanscapeGroup` is the class of every command group and :class:`HumanscapeCommand` the
class of every command (a group makes its commands and sub-groups of these classes), so that what
follows holds for all of them without a line in any command body:

- bad input ends with one line ``error: <file>: <problem> (fix: ...)`` on stderr and exit status 2:
  a :class:`~humanscape.errors.HumanscapeError`, and the OSError, rasterio, pyogrio, safetensors,
  JSON, table and value errors of the libraries (named by the file where the library names one);
  usage errors (a bad option value, a missing option) are one line too;
- a real bug says so in one line (exit 1); ``--verbose`` adds its traceback;
- Ctrl-C and SIGTERM end the run through the same clean-up path (``finally`` blocks remove
  temporary files and folders) with ``error: interrupted`` and exit status 130;
- before a command does any work, its outputs (options declared with
  :class:`~humanscape.cli.options.OutputPath`) are checked against the one rule for outputs
  (:func:`check_outputs`) and against its inputs (:class:`~humanscape.cli.options.InputPath`);
- library warnings are shown only with ``--verbose``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import traceback
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click

from humanscape.errors import HumanscapeError

#: Set by the root group's ``--verbose``.
STATE = {"verbose": False, "interrupted": False}
#: Third-party loggers that speak only with --verbose.
QUIET_LOGGERS = (
    "rasterio",
    "pyogrio",
    "fiona",
    "distributed",
    "lightning",
    "lightning.pytorch",
    "lightning.fabric",
    "skops",
    "PIL",
    "matplotlib",
)


def configure_logging(verbose: bool) -> None:
    """humanscape's own messages at INFO with ``--verbose`` (WARNING otherwise); libraries quiet."""
    STATE["verbose"] = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
    # Dask distributed sets its own loggers to INFO when it is first imported (later, in the
    # engine) and in every worker process: its configuration, read at import and inherited by
    # the workers through the environment, says the level instead
    level = "info" if verbose else "error"
    os.environ["DASK_DISTRIBUTED__LOGGING__DISTRIBUTED"] = level
    if "dask.config" in sys.modules:
        import dask.config

        dask.config.set({"distributed.logging.distributed": level})
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    logging.getLogger("py.warnings").setLevel(logging.WARNING if verbose else logging.CRITICAL)


def say(line: str, *, fresh: bool = False) -> None:
    """Write an error line to stderr on a line of its own.

    Progress bars an error interrupted are closed first (closing ends their line). A signal can
    land inside a bar's own drawing, leaving its line open: with ``fresh`` the line is started
    anew (cleared on a terminal, after a line break otherwise).
    """
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    if fresh:
        sys.stderr.write("\r\033[K" if sys.stderr.isatty() else "\n")
    print(line, file=sys.stderr)


def _interrupted() -> None:
    """Say once that the run was interrupted (Ctrl-C or SIGTERM)."""
    if STATE["interrupted"]:
        return
    STATE["interrupted"] = True
    engine = sys.modules.get("humanscape.scale.engine")  # only if a map was running
    kept = ", ".join(dict.fromkeys(str(p) for p in getattr(engine, "KEPT", []) if p.exists()))
    if kept:
        say(
            f"error: interrupted (no output was written; the finished tiles are kept in {kept}: "
            "run the same command again to resume)",
            fresh=True,
        )
    else:
        say("error: interrupted (nothing was left half written)", fresh=True)


def _usage_line(exc: click.UsageError) -> str:
    command = exc.ctx.command_path if exc.ctx else "humanscape"
    fix = f"see '{command} --help'"
    if (
        isinstance(exc, click.BadParameter)
        and not isinstance(exc, click.MissingParameter)
        and exc.param is not None
        and exc.message
    ):
        name = "/".join(exc.param.opts) or exc.param.name or "value"
        return " ".join(f"{name}: {exc.message} (fix: {fix})".split())
    return " ".join(f"{command}: {exc.format_message()} (fix: {fix})".split())


def _on_sigterm() -> Any:
    """SIGTERM raises KeyboardInterrupt, so that ``finally`` clean-ups run as for Ctrl-C."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        return None


def input_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the input is bad", from the libraries humanscape reads with."""
    import zipfile

    import pandas as pd
    import rasterio.errors

    types: list[type[BaseException]] = [
        OSError,
        ValueError,
        KeyError,
        IndexError,
        EOFError,
        json.JSONDecodeError,
        UnicodeDecodeError,
        zipfile.BadZipFile,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        rasterio.errors.RasterioError,
    ]
    try:
        import pyogrio.errors

        types += [pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError]
    except ImportError:  # pragma: no cover
        pass
    try:
        from safetensors import SafetensorError

        types.append(SafetensorError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def describe(exc: BaseException) -> str:
    """One line for a library error: the file it names (if any), the problem, a fix."""
    filename = getattr(exc, "filename", None)
    text = getattr(exc, "strerror", None) if isinstance(exc, OSError) and exc.strerror else str(exc)
    text = " ".join(str(text).split())[:300] or type(exc).__name__
    fix = "check that the file is complete and of the expected format"
    if isinstance(exc, PermissionError):
        fix = "check the permissions, or write somewhere else"
    elif isinstance(exc, FileNotFoundError):
        fix = "check the path"
    where = f"{filename}: " if filename else ""
    return f"{where}{text} (fix: {fix})"


def run_guarded(group: click.Group, args: list[str], prog_name: str, extra: dict[str, Any]) -> int:
    """Parse and run one command line; every way it can end becomes an exit status (see module)."""
    try:
        with group.make_context(prog_name, args, **extra) as ctx:
            group.invoke(ctx)
        return 0
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return 2
    except click.UsageError as exc:
        say(f"error: {_usage_line(exc)}")
        return 2
    except click.exceptions.Exit as exc:  # --help, --version
        return int(exc.exit_code)
    except (KeyboardInterrupt, click.Abort):
        _interrupted()
        return 130
    except BrokenPipeError:  # the reader of our output went away (| head): stop quietly
        sys.stdout = open(os.devnull, "w")
        return 0
    except HumanscapeError as exc:
        say(f"error: {exc.one_line()}")
        return 2
    except input_errors() as exc:
        say(f"error: {describe(exc)}")
        if STATE["verbose"]:
            traceback.print_exc()
        return 2
    except Exception as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        say(
            f"error: internal error {type(exc).__name__}: {first} "
            "(fix: rerun with --verbose for the traceback and report it)"
        )
        if STATE["verbose"]:
            traceback.print_exc()
        return 1


class HumanscapeCommand(click.Command):
    """A command whose outputs are checked before it runs and whose warnings stay quiet."""

    def invoke(self, ctx: click.Context) -> Any:
        from humanscape.cli.options import InputPath, OutputPath

        files: list[Path] = []
        folders: list[Path] = []
        inputs: list[str] = []
        for param in self.params:
            values = _values(ctx.params.get(param.name or ""))
            if isinstance(param.type, OutputPath):
                for value in values:
                    paths = [Path(value), *param.type.siblings(Path(value))]
                    (files if param.type.kind == "file" else folders).extend(paths)
            elif isinstance(param.type, InputPath):
                inputs += [str(v) for v in values]
        check_outputs(files, folders, inputs)
        with warnings.catch_warnings():
            if not STATE["verbose"]:
                warnings.simplefilter("ignore")
            return super().invoke(ctx)


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if v is not None]
    return [value]


class HumanscapeGroup(click.Group):
    """A command group whose commands are :class:`HumanscapeCommand`; the root runs guarded."""

    command_class = HumanscapeCommand
    group_class = type  # sub-groups are of this class too

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        args = sys.argv[1:] if args is None else list(args)
        prog_name = prog_name or "humanscape"
        self._main_shell_completion(extra, prog_name, complete_var)
        STATE["interrupted"] = False
        previous = _on_sigterm()
        try:
            code = run_guarded(self, args, prog_name, extra)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        if standalone_mode:
            sys.exit(code)
        return code


# --- the one rule for outputs -------------------------------------------------------------------


def check_outputs(
    files: Iterable[Path] = (), folders: Iterable[Path] = (), inputs: Iterable[str | Path] = ()
) -> None:
    """Refuse outputs that cannot be written, before any work is done.

    The rule, the same for every command: an output is a new path or one this kind of output
    replaces. A file output replaces an existing file (atomically, when the run succeeds); a
    folder output replaces a folder humanscape wrote (it holds ``.humanscape.json``) or an empty
    one, and refuses any other folder. Outputs must be distinct from each other and from the
    inputs, never replace a file inside an input folder, not be a folder where a file goes (nor
    the reverse), and be writable.
    """
    from humanscape._atomic import check_folder_replaceable

    outs = [(Path(p), "file") for p in files] + [(Path(p), "folder") for p in folders]
    seen: dict[Path, Path] = {}
    resolved_inputs = {
        Path(str(i)).resolve() for i in inputs if i and "*" not in str(i) and "://" not in str(i)
    }
    for path, kind in outs:
        if str(path).strip() in ("", "."):
            raise HumanscapeError(
                f"empty output path for a {kind}", fix=f"give a {kind} path to write to"
            )
        full = path.resolve()
        if full in seen:
            raise HumanscapeError(
                "given as two different outputs", path=path, fix="give each output its own path"
            )
        seen[full] = path
        if full in resolved_inputs:
            raise HumanscapeError(
                "is an input of this command, so it cannot also be its output",
                path=path,
                fix="write the output elsewhere",
            )
        if full.exists() and any(d in full.parents for d in resolved_inputs if d.is_dir()):
            raise HumanscapeError(
                "exists inside an input folder of this command (it may be one of the files "
                "read), so it is not replaced",
                path=path,
                fix="write the output elsewhere",
            )
        if kind == "file" and full.is_dir():
            raise HumanscapeError(
                "is a folder, but a file is written here", path=path, fix="give a file path"
            )
        if kind == "folder":
            check_folder_replaceable(path)
        _check_writable(path)


def _check_writable(path: Path) -> None:
    ancestor = path.resolve().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise HumanscapeError(
            f"cannot be created: {ancestor} is a file", path=path, fix="choose another folder"
        )
    try:
        with tempfile.NamedTemporaryFile(dir=ancestor, prefix=".humanscape-check-"):
            pass
    except OSError as exc:
        raise HumanscapeError(
            f"cannot be written: {exc.strerror or exc}",
            path=path,
            fix="choose a folder you can write to",
        ) from None
