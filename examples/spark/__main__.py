"""python -m corral.examples.spark: the example programs and their data generators.

    python -m corral.examples.spark gen-text --size 200MB --seed 1 /tmp/text
    python -m corral.examples.spark wordcount --master HOST:PORT /tmp/text --output /tmp/counts
    python -m corral.examples.spark gen-graph --nodes 10000 --edges 100000 --seed 1 /tmp/edges.txt
    python -m corral.examples.spark pagerank --master HOST:PORT --edges /tmp/edges.txt --iterations 10 --output /tmp/ranks
    python -m corral.examples.spark sort --master HOST:PORT /tmp/text --output /tmp/sorted

`--master` defaults to $CORRAL_MASTER (which `corral local --run` sets). Inputs, the
output directory and the resource string are checked before anything starts: a bad one
exits with status 2 and a message naming it; a failed job exits with status 1.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

import corral
from corral.examples.spark import programs
from corral.examples.spark.context import Context, ExecutorsUnavailable, JobFailed
from corral.examples.spark.generate import generate_graph, generate_text, parse_size
from corral.examples.spark.rdd import list_input_files


class UsageError(Exception):
    pass


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _size(text: str) -> int:
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if size < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte, not {text!r}")
    return size


def _resources(text: str) -> str:
    try:
        corral.Resources.parse(text)
    except corral.ResourceError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} does not parse: {exc}") from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m corral.examples.spark",
                                     description="A Spark-like batch engine on corral: example programs.")
    sub = parser.add_subparsers(dest="command", required=True)

    def program(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--master", default=os.environ.get("CORRAL_MASTER"),
                       help="HOST:PORT of a corral master, or local[N] (default $CORRAL_MASTER)")
        p.add_argument("--executors", type=_positive, default=2)
        p.add_argument("--executor-resources", type=_resources, default="cpus:1;mem:512")
        p.add_argument("--py-files", nargs="*", default=[], help="modules and zips the executors need")
        p.add_argument("--speculation", action="store_true", help="run copies of straggling tasks")
        p.add_argument("--no-progress", action="store_true", help="no progress bar or stage lines")
        return p

    wc = program("wordcount", "count the words of text files")
    wc.add_argument("inputs", nargs="+", metavar="INPUT", help="files, directories or globs")
    wc.add_argument("--output", default=None, help="write word<TAB>count part files here (must not exist)")
    wc.add_argument("--top", type=_positive, default=20, help="print the N most frequent words")

    pr = program("pagerank", "rank the pages of a link graph")
    pr.add_argument("--edges", required=True, help="a file of 'src dst' lines")
    pr.add_argument("--iterations", type=_positive, default=10)
    pr.add_argument("--output", default=None, help="write page<TAB>rank part files here (must not exist)")
    pr.add_argument("--top", type=_positive, default=10)

    st = program("sort", "sort the lines of text files")
    st.add_argument("inputs", nargs="+", metavar="INPUT")
    st.add_argument("--output", required=True, help="write the sorted part files here (must not exist)")

    gt = sub.add_parser("gen-text", help="write deterministic text")
    gt.add_argument("--size", type=_size, required=True, help="e.g. 200MB, 64MiB")
    gt.add_argument("--seed", type=int, default=1)
    gt.add_argument("--files", type=_positive, default=None, help="number of files (default: one per 64 MB)")
    gt.add_argument("directory")

    gg = sub.add_parser("gen-graph", help="write a deterministic link graph")
    gg.add_argument("--nodes", type=_positive, required=True)
    gg.add_argument("--edges", type=_positive, required=True)
    gg.add_argument("--seed", type=int, default=1)
    gg.add_argument("file")
    return parser


def _check_output(path: str | None) -> None:
    if path is not None and os.path.exists(path):
        raise UsageError(f"output directory {os.path.abspath(path)} already exists")


def _context(args: argparse.Namespace, name: str) -> Context:
    if not args.master:
        raise UsageError("no master: pass --master HOST:PORT (or run under `corral local --run`)")
    try:
        return Context(args.master, app_name=name, executors=args.executors,
                       executor_resources=args.executor_resources, py_files=args.py_files,
                       speculation=args.speculation, progress=False if args.no_progress else None)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    if args.command == "gen-text":
        paths = generate_text(args.directory, args.size, args.seed, args.files or 0)
        print(f"wrote {sum(p.stat().st_size for p in paths)} bytes in {len(paths)} file(s) under {args.directory}")
        return 0
    if args.command == "gen-graph":
        path = generate_graph(args.file, args.nodes, args.edges, args.seed)
        print(f"wrote {path}")
        return 0
    inputs = [args.edges] if args.command == "pagerank" else args.inputs
    try:
        list_input_files(inputs)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    _check_output(args.output)
    with _context(args, f"spark-{args.command}") as ctx:
        if args.command == "wordcount":
            for word, count in programs.wordcount(ctx, inputs, args.output, args.top):
                print(f"{word}\t{count}")
        elif args.command == "pagerank":
            for page, rank in programs.pagerank(ctx, args.edges, args.iterations, args.output, args.top):
                print(f"{page}\t{rank:.6f}")
        else:
            programs.sort(ctx, inputs, args.output)
        if args.output:
            print(f"output in {os.path.abspath(args.output)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ExecutorsUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except JobFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
