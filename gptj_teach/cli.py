"""The ``gptj-teach`` command line (also ``python -m gptj_teach``).

gptj-teach generate "def fib(n):" --temperature 0.8 --top-p 0.9 --max-new-tokens 64 [--model tiny] [--seed 0]
gptj-teach student [--source notebooks] [--out student]    # the student edition (needs nbgrader)
"""

import argparse
import dataclasses
import os
import sys

import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gptj-teach", description="GPT-J from scratch, for teaching.")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="stream a continuation of a prompt to the terminal")
    gen.add_argument("prompt")
    gen.add_argument("--model", default="tiny", help="'tiny' (default), a checkpoint directory, or a hub id")
    gen.add_argument("--revision", default=None, help="hub branch, e.g. float16 for EleutherAI/gpt-j-6B")
    gen.add_argument("--max-new-tokens", type=int, default=64)
    gen.add_argument("--temperature", type=float, default=0.8)
    gen.add_argument("--top-k", type=int, default=0, help="0 = off (the default)")
    gen.add_argument("--top-p", type=float, default=0.9, help="1 = off")
    gen.add_argument("--greedy", action="store_true", help="always take the most likely token")
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--device", default=None, help="cpu (default) or cuda")
    stu = commands.add_parser("student", help="write the student edition of the notebooks (solutions cleared)")
    stu.add_argument("--source", default="notebooks", help="folder of the teacher edition (default: notebooks)")
    stu.add_argument("--out", default="student", help="folder to write to (default: student)")
    args = parser.parse_args(argv)  # a bad option: argparse prints the usage and exits with 2, no traceback
    if args.command == "student":
        return student(args)
    import gptj_teach as gt  # after parsing: --help stays instant

    try:
        generate(gt, args)
    except gt.GPTJTeachError as error:  # the user's mistake, in our words: one line, no traceback
        print(f"\ngptj-teach: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`gptj-teach ... | head -c 1`): stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail again
        return 0
    except KeyboardInterrupt:  # Ctrl-C
        print(file=sys.stderr)
        return 130
    return 0


def generate(gt, args) -> None:
    """Load the model and stream the continuation of args.prompt to stdout."""
    prompt = gt.checks.check_text(args.prompt, "the prompt")  # before printing it: undecodable bytes stop here
    # built once, before loading: a bad value stops here, not after a 12 GB download. --greedy uses none of the rest
    sample = dict(do_sample=True, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    settings = gt.generation.SamplingSettings(**({} if args.greedy else sample))
    device = None if args.device is None else gt.checks.check_device(args.device)
    dtype = torch.float16 if device is not None and device.type == "cuda" else None
    model, tok = gt.load(args.model, revision=args.revision, dtype=dtype, device=device)
    print(prompt, end="", flush=True)
    for piece in gt.stream(model, tok, prompt, args.max_new_tokens, seed=args.seed, **dataclasses.asdict(settings)):
        print(piece, end="", flush=True)
    print(flush=True)


def student(args) -> int:
    """Write the student edition; one line per notebook."""
    from .classroom import student as edition  # nbgrader: a test and notebook dependency, imported only here
    from .errors import GPTJTeachError

    try:
        written = edition.build(args.source, args.out)
    except GPTJTeachError as error:  # a bad --source or --out, a notebook nbgrader refuses: one line, no traceback
        print(f"gptj-teach: error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
