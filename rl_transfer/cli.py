"""The ``rl-transfer`` command line: a thin layer over :mod:`rl_transfer`'s API.

Bad input prints one ``error: ...`` line on stderr and exits with status 2, writing nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

from rl_transfer.errors import USER_ERRORS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _seeds(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'auto', got {text!r}"
        ) from None


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def build_parser() -> argparse.ArgumentParser:
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
        help="a study file (YAML) with the keys of these flags; flags given override it",
    )
    run.add_argument(
        "--pair",
        type=_names,
        metavar="NAME[,NAME]",
        help="env pair(s) (default: cartpole-long-pole; `rl-transfer pairs` lists them)",
    )
    run.add_argument(
        "--algo",
        type=_names,
        metavar="ALGO[,ALGO]",
        help="ppo, a2c, dqn, sac, td3; several comma-separated (default: ppo)",
    )
    run.add_argument(
        "--methods",
        type=_names,
        metavar="A,B",
        help="transfer methods, comma-separated (default: policy,value); "
        "scratch always runs as the baseline",
    )
    run.add_argument(
        "--seeds",
        type=_seeds,
        metavar="N|auto",
        help="number of seeds, or auto (default): rounds of 3, 5, 8, ... seeds until each "
        "comparison is decided or futile, at most --max-seeds",
    )
    run.add_argument(
        "--max-seeds",
        type=_positive_int,
        metavar="N",
        help="the most seeds --seeds auto runs (default: 10); a comparison stops earlier when "
        "decided, or as futile when it would need more than twice this",
    )
    run.add_argument(
        "--seed-offset",
        type=_non_negative_int,
        metavar="K",
        help="first seed (default: 0): seeds K, K+1, ...",
    )
    run.add_argument("--source-steps", type=_positive_int, help="source pretraining env steps")
    run.add_argument("--target-steps", type=_positive_int, help="target env steps per run")
    run.add_argument("--eval-every", type=_positive_int, help="target steps between evaluations")
    run.add_argument(
        "--eval-episodes",
        type=_positive_int,
        help="fixed evaluation episodes per evaluation (default: 10)",
    )
    run.add_argument("--threshold", type=float, help="time-to-threshold return level")
    run.add_argument("--out", type=Path, help="experiment folder (default: runs/<name>)")
    run.add_argument(
        "--source-cache",
        type=Path,
        help="shared cache of pretrained sources (default: runs/sources)",
    )
    run.add_argument(
        "--source-model",
        type=Path,
        metavar="MODEL.zip",
        help="a trained source agent (for example from rl-baselines3-zoo) used for "
        "every seed instead of pretraining",
    )
    run.add_argument("--workers", type=_positive_int, help="parallel processes (default: cores)")
    run.add_argument(
        "--backend", choices=("local", "ray"), help="local processes (default) or Ray tasks"
    )
    run.add_argument("--ray-address", help="a running Ray cluster (default: start a local Ray)")
    run.add_argument("--name", help="experiment name (default: <pair>-<algo>-<hash of the spec>)")
    run.add_argument(
        "--method-arg",
        action="append",
        default=[],
        metavar="METHOD.KNOB=VALUE",
        help="a method's knob, e.g. shaping.scale=0.5 (repeatable; docs/methods.md "
        "lists the knobs)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.add_argument(
        "--pairs-file",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="register the pairs of this YAML file first (repeatable); files in "
        "./pairs/ (or $RL_TRANSFER_PAIRS_DIR) are always loaded",
    )

    pairs = sub.add_parser("pairs", help="list the registered env pairs")
    pairs.add_argument("--json", action="store_true", help="machine-readable output")
    pairs.add_argument(
        "--pairs-file",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="register the pairs of this YAML file first (repeatable)",
    )
    pairs.add_argument("show", nargs="*", help="`show NAME` prints one pair whole")

    methods = sub.add_parser(
        "methods",
        help="list the transfer methods (plugins included) and what each moves per algorithm",
    )
    methods.add_argument("--json", action="store_true", help="machine-readable output")

    report = sub.add_parser(
        "report",
        help="rebuild summary, tables and plots from experiment folders; with two or more, "
        "also compare them",
    )
    report.add_argument("dirs", type=Path, nargs="+", metavar="DIR")

    tb = sub.add_parser("tensorboard", help="serve an experiment folder with TensorBoard")
    tb.add_argument("dir", type=Path)
    tb.add_argument("--port", type=_positive_int, help="port (default: a free one)")
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from rl_transfer.errors import SpecError
    from rl_transfer.experiment import Experiment
    from rl_transfer.runner import Plan

    method_args: dict[str, dict[str, str]] = {}
    for item in args.method_arg:
        key, sep, value = item.partition("=")
        method, dot, knob = key.partition(".")
        if not sep or not dot or not method or not knob:
            raise SpecError(
                f"--method-arg {item!r}: expected METHOD.KNOB=VALUE, e.g. shaping.scale=0.5"
            )
        method_args.setdefault(method, {})[knob] = value
    kwargs = {
        "method_args": method_args or None,
        "pairs": args.pair,
        "algos": args.algo,
        "methods": args.methods,
        "seeds": args.seeds,
        "max_seeds": args.max_seeds,
        "seed_offset": args.seed_offset,
        "source_steps": args.source_steps,
        "target_steps": args.target_steps,
        "eval_every": args.eval_every,
        "eval_episodes": args.eval_episodes,
        "threshold": args.threshold,
        "out": args.out,
        "source_cache": args.source_cache,
        "source_model": args.source_model,
        "workers": args.workers,
        "backend": args.backend,
        "ray_address": args.ray_address,
        "name": args.name,
    }
    if args.max_seeds is not None and args.seeds not in (None, "auto"):
        raise SpecError(
            f"--max-seeds applies to --seeds auto; with --seeds {args.seeds} every seed runs"
        )
    exp = Experiment(study=args.study, quiet=args.quiet, **kwargs)
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
    return 1 if result.failed else 0


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
    return 2


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM stops as cleanly as Ctrl-C
    if args.command in ("run", "pairs"):
        try:
            from envs import load_user_pairs

            load_user_pairs(args.pairs_file)
        except USER_ERRORS as exc:
            return _usage_error(str(exc))
    handlers = {
        "run": _cmd_run,
        "pairs": _cmd_pairs,
        "methods": _cmd_methods,
        "report": _cmd_report,
        "tensorboard": _cmd_tensorboard,
    }
    try:
        return handlers[args.command](args)
    except USER_ERRORS as exc:
        return _usage_error(str(exc))
    except BrokenPipeError:  # output piped into a command that stopped reading (| head)
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        if args.command == "run":
            print(
                "interrupted: finished runs are kept; run the same command again to resume",
                file=sys.stderr,
            )
        return 130


if __name__ == "__main__":
    sys.exit(main())
