"""What a benchmark script's main does around its measurement: the results and README options, the `--report`
mode, the root check, SIGTERM unwinding the bed, and publishing a run (results file, section, README)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

from lib.report import replace_section, stamp, write_results

T = TypeVar("T")
Section = Callable[[dict[str, Any], str], str]


def results_options(ap: argparse.ArgumentParser, name: str, results_dir: Path) -> None:
    """--results-dir, --readme, --no-readme and --report, for a benchmark whose results are <timestamp>-NAME.json."""
    ap.add_argument("--results-dir", type=Path, default=results_dir, help=f"where <timestamp>-{name}.json goes")
    ap.add_argument("--readme", type=Path, help="the README whose section is written (default bench/README.md, not with --quick)")
    ap.add_argument("--no-readme", action="store_true", help="leave the README alone")
    ap.add_argument("--report", type=Path, metavar="JSON", help="measure nothing: print the section of this results file "
                    "(and write it to --readme if given)")  # fmt: skip


def report_only(args: argparse.Namespace, name: str, section: Section) -> int:
    """--report: the section of an earlier results file, printed, and written to --readme if given; measures nothing."""
    text = section(json.loads(args.report.read_text()), args.report.name)
    print(text)
    if args.readme is not None and not args.no_readme:
        replace_section(args.readme, name, text)
    return 0


def is_root(script: str, why: str) -> bool:
    """Whether this runs as root; if not, says so on stderr (`script` needs root for `why`)."""
    if os.geteuid() == 0:
        return True
    print(f"{script} needs root ({why})", file=sys.stderr)
    return False


def unwinding_sigterm(run: Callable[..., T], *args: Any) -> T:
    """run(*args) with SIGTERM raising SystemExit, so that a terminated bench unwinds through its finally blocks
    (namespaces, processes, cgroups go) as it does on Ctrl-C; the previous handler is put back after."""

    def terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        return run(*args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def publish(doc: dict[str, Any], args: argparse.Namespace, name: str, section: Section, readme: Path) -> Path:
    """A run's results file (<timestamp>-NAME.json in --results-dir) and its section, printed and written to the
    README: --readme, else `readme` unless --quick; none with --no-readme. The results file's path."""
    results = write_results(args.results_dir, f"{stamp(doc['started'])}-{name}.json", doc)
    text = section(doc, results.name)
    print(text)
    print(f"results: {results}", file=sys.stderr)
    target = args.readme or (None if args.quick or args.no_readme else readme)
    if target is not None and not args.no_readme:
        replace_section(target, name, text)
        print(f"section written to {target}", file=sys.stderr)
    return results
