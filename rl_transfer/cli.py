"""The ``rl-transfer`` command line: a thin layer over :mod:`rl_transfer`'s API.

An :class:`rl_transfer.errors.RLTransferError` ends a command with one ``error: ...`` line on
stderr and the exit status of its kind (the table in :mod:`rl_transfer.errors`; 2 for bad
input, which writes nothing). ``rl-transfer --help``, ``run --help``, ``pairs`` and ``report``
import neither torch nor stable-baselines3: the modules that need them are imported by the
commands that train.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rl_transfer.errors import EXIT_INTERRUPTED, EXIT_RUN_FAILED, EXIT_USAGE, RLTransferError

if TYPE_CHECKING:
    from rl_transfer.experiment import Experiment


class _Parser(argparse.ArgumentParser):
    """argparse's parser with one-line errors (exit status 2) and no abbreviated flags: a
    prefix such as ``--pairs`` would otherwise silently mean ``--pairs-file``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text: str) -> int:
    from rl_transfer.spec import _positive_int as parse

    return parse(text)


def _with_default(help_text: str, default: str) -> str:
    return f"{help_text} (default: {default})"


def _add_spec_flags(run: argparse.ArgumentParser) -> None:
    """One flag per :class:`rl_transfer.spec.ExperimentSpec` field, from its declaration
    (:class:`rl_transfer.spec.Option`); former spellings are accepted, not shown."""
    from rl_transfer.spec import options

    for name, option in options().items():
        flags = option.flags or ("--" + name.replace("_", "-"),)
        kwargs = {
            "dest": name,
            "type": option.kind.parse,
            "metavar": option.metavar,
            "choices": option.choices,
        }
        if option.kind.collect is not None:
            kwargs.update(action="append", default=[])
        if option.kind.nargs is not None:
            kwargs["nargs"] = option.kind.nargs
        run.add_argument(flags[0], help=_with_default(option.help, option.default), **kwargs)
        for old, alias in zip(flags[1:], option.aliases):
            run.add_argument(old, help=argparse.SUPPRESS, **{**kwargs, "dest": alias})


def _spec_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """The spec keyword arguments given as flags (None: not given)."""
    from rl_transfer.spec import options

    out: dict[str, object] = {}
    for name, option in options().items():
        value = getattr(args, name)
        for alias in option.aliases[: max(len(option.flags) - 1, 0)]:  # a former flag's name
            old = getattr(args, alias)
            if old and not value:  # given only under the former name: keep it for messages
                name, value = alias, old
            elif old:
                value = value + old
        if option.kind.collect is not None:
            value = option.kind.collect(value) or None
        out[name] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    """The ``rl-transfer`` argument parser (imports neither torch nor stable-baselines3)."""
    from rl_transfer import __version__

    parser = _Parser(prog="rl-transfer", description="Reinforcement-learning transfer workbench.")
    parser.add_argument("--version", action="version", version=f"rl-transfer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="run a transfer experiment (default: cartpole-long-pole, PPO); the same command "
        "again resumes it",
    )
    run.add_argument(
        "study",
        nargs="?",
        type=Path,
        help=_with_default(
            "a study file (YAML) with the keys of these flags (knobs: for --knob), or several "
            "experiments listed under `experiments` (run one after the other); flags given "
            "override it",
            "none",
        ),
    )
    _add_spec_flags(run)
    run.add_argument(
        "--quiet",
        action="store_true",
        help=_with_default(
            "no progress display", "progress on stderr; plain lines when it is not a terminal"
        ),
    )
    run.add_argument(
        "--pairs-file",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help=_with_default(
            "register the pairs of this YAML file first (repeatable); files in "
            "./pairs/ (or $RL_TRANSFER_PAIRS_DIR) are always loaded",
            "none",
        ),
    )

    pairs = sub.add_parser("pairs", help="list the registered env pairs")
    pairs.add_argument(
        "--json",
        action="store_true",
        help=_with_default("machine-readable output", "a table"),
    )
    pairs.add_argument(
        "--pairs-file",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help=_with_default("register the pairs of this YAML file first (repeatable)", "none"),
    )
    pairs.add_argument(
        "show", nargs="*", help=_with_default("`show NAME` prints one pair whole", "list all")
    )

    methods = sub.add_parser(
        "methods",
        help="list the transfer methods (plugins included) and what each moves per algorithm",
    )
    methods.add_argument(
        "--json",
        action="store_true",
        help=_with_default(
            "machine-readable output, with per algorithm the tensors copied, synced and frozen",
            "a table",
        ),
    )

    report = sub.add_parser(
        "report",
        help="rebuild summary, tables and plots from experiment folders; with two or more, "
        "also compare them",
    )
    report.add_argument("dirs", type=Path, nargs="+", metavar="DIR", help="experiment folder(s)")

    tb = sub.add_parser("tensorboard", help="serve an experiment folder with TensorBoard")
    tb.add_argument("dir", type=Path, help="an experiment folder")
    tb.add_argument("--port", type=_positive_int, help=_with_default("port", "a free one"))
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from rl_transfer.errors import SpecError
    from rl_transfer.experiment import Experiment
    from rl_transfer.spec import study_size

    kwargs = _spec_kwargs(args)
    if args.max_seeds is not None and args.seeds not in (None, "auto"):
        raise SpecError(
            f"--max-seeds applies to --seeds auto; with --seeds {args.seeds} every seed runs"
        )
    n = study_size(args.study) if args.study is not None else 0
    if not n:
        return _run_one(Experiment(study=args.study, quiet=args.quiet, **kwargs))
    for flag, value in (("--out", args.out), ("--name", args.name)):
        if value is not None:
            raise SpecError(
                f"{flag} names one experiment's folder and study file {args.study} holds {n} "
                "experiments: give each its own `name` in the file, or leave it out"
            )
    # every experiment is checked before the first one starts
    experiments = [
        Experiment(study=args.study, quiet=args.quiet, entry=i, **kwargs) for i in range(n)
    ]
    folders: dict[Path, int] = {}
    for i, exp in enumerate(experiments):
        out = exp.spec.output_dir().resolve()
        if out in folders:
            raise SpecError(
                f"study file {args.study}: experiments[{folders[out]}] and experiments[{i}] "
                f"would both write {out}; give them different names or settings"
            )
        folders[out] = i
    status = 0
    for i, exp in enumerate(experiments, 1):
        print(f"study {args.study}: experiment {i} of {n}", file=sys.stderr)
        status = _run_one(exp) or status
    print(
        f"study {args.study}: {n} experiments in "
        + ", ".join(str(e.spec.output_dir()) for e in experiments),
        file=sys.stderr,
    )
    return status


def _run_one(exp: Experiment) -> int:
    """Run one experiment with progress and its tables; its exit status."""
    from rl_transfer.runner import Plan

    out = exp.spec.output_dir()

    def announce(jobs: Plan) -> None:
        todo = len(jobs.sources) + len(jobs.targets)
        reused = f", {len(jobs.reused)} finished run(s) reused" if jobs.reused else ""
        if jobs.cached_sources:
            reused += f", {jobs.cached_sources} source(s) from the cache"
        print(
            f"experiment {exp.spec.experiment_name()} -> {out}: {todo} job(s) to run{reused}",
            file=sys.stderr,
        )
        if jobs.from_scratch_cache or jobs.scratch_to_train:
            print(
                f"scratch baselines: {len(jobs.from_scratch_cache)} reused from the scratch "
                f"cache ({jobs.scratch_cache}), {jobs.scratch_to_train} to train",
                file=sys.stderr,
            )

    result = exp.run(on_start=announce)
    if result.reused:
        print(f"reused {result.reused} finished run(s) of {len(result.runs)}", file=sys.stderr)
    from rl_transfer.reports import print_tables

    print_tables(result.summary)
    print(
        f"wrote {out}/summary.json, metrics.csv, report.md, curves_*.png "
        f"({result.wall_time_s:.0f} s); `tensorboard --logdir {out}` shows the curves"
    )
    for r in result.failed:
        print(
            f"run failed: {r['pair']}/{r['algo']}/{r['method']}/seed_{r['seed']}: {r['error']}",
            file=sys.stderr,
        )
    return EXIT_RUN_FAILED if result.failed else 0


def _cmd_pairs(args: argparse.Namespace) -> int:
    from envs import get_pair, list_pairs

    if args.show:
        if args.show[0] != "show" or len(args.show) != 2:
            raise SystemExit(_usage_error("usage: rl-transfer pairs [--json] [show NAME]"))
        print(json.dumps(get_pair(args.show[1]).to_dict(), indent=2))
        return 0
    pairs = list_pairs()
    if args.json:
        print(json.dumps([p.to_dict() for p in pairs], indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="env pairs")
    t.add_column("name", no_wrap=True)
    for col in ("source", "target", "differs", "threshold"):
        t.add_column(col)
    for p in pairs:
        t.add_row(
            p.name,
            p.source.describe(),
            p.target.describe(),
            p.describe_differences(),
            f"{p.threshold:g}",
        )
    Console().print(t)
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    if args.json:
        from rl_transfer.methods.docs import describe

        print(json.dumps(describe(), indent=2))
        return 0
    from rich.console import Console

    from rl_transfer.methods.docs import methods_table

    Console().print(methods_table())
    print("docs/methods.md: tensors copied, synced and frozen, warm-up and knobs per algorithm")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from rl_transfer.reports import compare_table, print_tables, write_reports

    summaries = {}
    for d in args.dirs:
        summaries[str(d)] = write_reports(d)
        if len(args.dirs) == 1:
            print_tables(summaries[str(d)])
        print(f"wrote {d}/summary.json, metrics.csv, report.md and plots")
    if len(args.dirs) > 1:
        from rich.console import Console

        Console().print(compare_table(summaries))
    return 0


def _cmd_tensorboard(args: argparse.Namespace) -> int:
    from rl_transfer.errors import SpecError
    from rl_transfer.tensorboard import free_port, tensorboard_command

    if not (args.dir / "experiment.yaml").is_file():
        raise SpecError(f"{args.dir} is not an experiment folder (no experiment.yaml in it)")
    port = args.port or free_port()
    print(
        f"TensorBoard on http://127.0.0.1:{port}/ for {args.dir} (Ctrl-C stops it)", file=sys.stderr
    )
    import subprocess

    return subprocess.call(tensorboard_command(args.dir, port))


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run ``rl-transfer`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    An :class:`rl_transfer.errors.RLTransferError` prints one ``error:`` line and returns its
    ``exit_code``; Ctrl-C or SIGTERM returns 130.
    """
    args = build_parser().parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM stops as cleanly as Ctrl-C
    handlers = {
        "run": _cmd_run,
        "pairs": _cmd_pairs,
        "methods": _cmd_methods,
        "report": _cmd_report,
        "tensorboard": _cmd_tensorboard,
    }
    try:
        if args.command in ("run", "pairs"):
            from envs import load_user_pairs

            load_user_pairs(args.pairs_file)
        return handlers[args.command](args)
    except RLTransferError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into a command that stopped reading (| head)
        sys.stderr.close()
        # a listing that was cut short is fine; an experiment that stopped is interrupted
        # (finished runs are kept and the same command resumes it)
        return EXIT_INTERRUPTED if args.command == "run" else 0
    except KeyboardInterrupt:
        if args.command == "run":
            print(
                "interrupted: finished runs are kept; run the same command again to resume",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
