"""The ``gptj-teach`` command line (also ``python -m gptj_teach``).

    gptj-teach generate "def fib(n):" --temperature 0.8 --top-p 0.9 --max-new-tokens 64 [--model tiny] [--seed 0]
"""

import argparse
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
    args = parser.parse_args(argv)
    import gptj_teach as gt  # after parsing: --help stays instant

    try:
        dtype = torch.float16 if args.device == "cuda" else None
        model, tok = gt.load(args.model, revision=args.revision, dtype=dtype, device=args.device)
        print(args.prompt, end="", flush=True)
        for piece in gt.stream(model, tok, args.prompt, max_new_tokens=args.max_new_tokens,
                               do_sample=not args.greedy, temperature=args.temperature, top_k=args.top_k,
                               top_p=args.top_p, seed=args.seed):
            print(piece, end="", flush=True)
        print()
    except (ValueError, TypeError) as error:  # our own clear messages: no traceback for the user
        print(f"\ngptj-teach: error: {error}", file=sys.stderr)
        return 2
    return 0
