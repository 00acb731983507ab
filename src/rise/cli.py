"""`rise` command line: one subcommand per stage, plus `run` for the whole pipeline.

Every field of a stage's config dataclass is a flag (`--turns 5`, `--sampling.temperature 0.7`);
`--config FILE.yaml` loads a file first and `--set key=value` overrides anything. Bad input ends
with one line `rise: error: ...` naming the culprit and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
import typing
from typing import Any

STAGES = {
    "pretrain": ("rise.pretrain", "PretrainConfig", "build the embedded default base model"),
    "collect": ("rise.collect", "CollectConfig", "roll out a policy and collect improved responses"),
    "train": ("rise.train", "TrainStageConfig", "convert rollouts to weighted examples and fine-tune"),
    "eval": ("rise.evaluate", "EvalConfig", "evaluate models over turns and parallel samples"),
    "run": ("rise.run", "RunConfig", "the whole pipeline (default: the embedded default, offline)"),
}
# Fixed flags of every subcommand; config fields of the same name are set through them.
RESERVED = {"threads", "models", "out", "config", "set", "quiet", "debug"}
DEFAULT_OUT = {"pretrain": "runs/base", "collect": "runs/collect", "train": "runs/train",
               "eval": "runs/eval", "run": "runs/default"}


def _config_class(stage: str):
    import importlib

    mod, cls, _ = STAGES[stage]
    return getattr(importlib.import_module(mod), cls)


def _add_config_flags(parser: argparse.ArgumentParser, cls) -> None:
    """One flag per leaf config field, grouped by config section, each with the field's source
    comment and its default (for `rise run`, the defaults the run really gives each stage)."""
    from rise.config import flag_specs

    groups: dict[str, argparse._ArgumentGroup] = {}
    for spec in flag_specs(cls):
        if spec.name in RESERVED:
            continue
        if spec.section not in groups:
            title = f"{spec.section} settings" if spec.section else "settings"
            about = spec.section_doc if spec.section else "config fields; also --config / --set"
            groups[spec.section] = parser.add_argument_group(title, about.replace("%", "%%") or None)
        kw: dict[str, Any] = {"dest": f"cfg:{spec.name}", "default": argparse.SUPPRESS,
                              "metavar": _metavar(spec.type), "help": _flag_help(spec)}
        if typing.get_origin(spec.type) is list or any(typing.get_origin(t) is list
                                                        for t in typing.get_args(spec.type)):
            kw["nargs"] = "+"  # a list, or a value that may be one (e.g. one per turn)
        groups[spec.section].add_argument(f"--{spec.name}", **kw)


def _metavar(tp) -> str:
    """INT, FLOAT, STR, BOOL, LIST or MAP from a field's annotation (Optional unwrapped)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args and typing.get_origin(tp) not in (list, dict):
        tp = args[0]
    origin = typing.get_origin(tp) or tp
    names = {int: "INT", float: "FLOAT", str: "STR", bool: "BOOL", list: "ITEM", dict: "MAP"}
    return names.get(origin, "V")


def _flag_help(spec) -> str:
    """The field's comment and its default as YAML would write it (argparse needs % doubled)."""
    import json

    value = spec.default
    if value is None:
        shown = "null"
    elif isinstance(value, bool):
        shown = str(value).lower()
    elif isinstance(value, str):
        shown = value if value else '""'
    elif isinstance(value, (list, dict)):
        shown = json.dumps(value)
    else:
        shown = str(value)
    text = f"{spec.help} (default: {shown})" if spec.help else f"default: {shown}"
    return text.replace("%", "%%")


def _add_ray_flags(parser: argparse.ArgumentParser) -> None:
    """The short spellings of the `ray` section's two everyday keys: `--ray` and `--ray_address`."""
    group = parser.add_argument_group("ray", "short flags for the ray section (docs/scaling.md)")
    group.add_argument("--ray", dest="cfg:ray.enabled", action="store_const", const="true",
                       default=argparse.SUPPRESS, help="same as --ray.enabled true")
    group.add_argument("--ray_address", dest="cfg:ray.address", metavar="ADDRESS", default=argparse.SUPPRESS,
                       help="same as --ray.address (default: $RAY_ADDRESS, else a local cluster)")


def build_parser() -> argparse.ArgumentParser:
    from rise.config import flag_specs

    p = argparse.ArgumentParser(prog="rise", description="Recursive Introspection (RISE) for language models")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of every error, bad input included (also RISE_DEBUG=1)")
    sub = p.add_subparsers(dest="stage", required=True)
    for stage, (_, _, help_) in STAGES.items():
        sp = sub.add_parser(stage, help=help_, description=help_, usage=f"rise {stage} [options]")
        sp.add_argument("--config", help="YAML file with this stage's config")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key (dotted), value parsed as YAML; repeatable")
        sp.add_argument("--out", default=DEFAULT_OUT[stage], help=f"output folder (default {DEFAULT_OUT[stage]})")
        sp.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of every error (also RISE_DEBUG=1)")
        if stage == "pretrain":
            sp.add_argument("--cached", action="store_true",
                            help="print the shipped or cached base for this config "
                                 "(pretrain into the cache only if none)")
        if stage == "eval":
            sp.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                            help="model to evaluate (repeatable); PATH alone names it by its folder")
        _add_config_flags(sp, _config_class(stage))
        if any(spec.name == "ray.enabled" for spec in flag_specs(_config_class(stage))):
            _add_ray_flags(sp)
    from rise.gguf import add_parser as add_convert_gguf  # not a stage: no config, no --set

    add_convert_gguf(sub)
    return p


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    from rise.config import parse_override

    out: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key.startswith("cfg:"):
            if isinstance(value, list):
                out[key[4:]] = value
            else:
                try:
                    out[key[4:]] = yaml.safe_load(value)
                except yaml.YAMLError:
                    out[key[4:]] = value
    for item in args.set:
        k, v = parse_override(item)
        out[k] = v
    if getattr(args, "model", None):
        models = {}
        for spec in args.model:
            name, _, path = spec.partition("=") if "=" in spec else (spec.rstrip("/").split("/")[-1], "", spec)
            models[name] = path
        out["models"] = models
    return out


def main(argv: list[str] | None = None) -> int:
    import os

    from rise.config import resolve

    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("RISE_DEBUG", "") not in ("", "0")
    try:
        if args.stage == "convert-gguf":
            from rise.gguf import cli_main

            return cli_main(args)
        cfg = resolve(_config_class(args.stage), args.config, _overrides(args))
        return _dispatch(args, cfg)
    except Exception as e:  # noqa: BLE001 - bad input ends in one line; anything else is a bug
        if debug or not _is_user_error(e):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"rise: error: {msg}", file=sys.stderr)
        return 2


def _is_user_error(e: Exception) -> bool:
    """Bad input a user can fix (rise's `InputError`: config, data, model paths) or an endpoint
    that failed after retries; these get one line. Anything else (a KeyError inside `fit`, a
    library's ValueError) is a bug and keeps its traceback."""
    from rise.engines.openai_http import OpenAIBackendError
    from rise.errors import InputError

    return isinstance(e, (InputError, OpenAIBackendError))


def _dispatch(args, cfg) -> int:
    from rise.engines import set_threads

    set_threads(args.threads)
    if args.threads and hasattr(cfg, "threads"):
        cfg.threads = args.threads
    progress = not args.quiet
    if args.stage == "pretrain":
        from rise.pretrain import ensure_base_model, pretrain

        if args.cached:
            print(ensure_base_model(cfg, progress=progress))
            return 0
        cfg.out_dir = cfg.out_dir or args.out
        print(pretrain(cfg, progress=progress))
    elif args.stage == "collect":
        from rise.collect import run_collect

        print(run_collect(cfg, args.out, progress))
    elif args.stage == "train":
        from rise.train import run_train

        run_train(cfg, args.out, progress)
        print(f"{args.out}/checkpoint")
    elif args.stage == "eval":
        from rise.evaluate import run_eval

        run_eval(cfg, args.out, progress)
        print(f"{args.out}/report.md")
    else:
        from rise.run import run

        run(cfg, args.out, progress)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
