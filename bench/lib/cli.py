"""Command-line conventions the wrk benchmarks share: comma-separated choices, and --quick's measurement counts."""

from __future__ import annotations

import argparse


def split_choices(text: str, known: dict, kind: str) -> tuple[str, ...]:
    """A comma-separated command-line list, each item one of `known`; an unknown one stops the run."""
    chosen = tuple(item.strip() for item in text.split(",") if item.strip())
    for item in chosen:
        if item not in known:
            raise SystemExit(f"unknown {kind} {item!r}: choose from {','.join(known)}")
    return chosen


def measurement_counts(args: argparse.Namespace) -> tuple[int, int, int]:
    """(duration, rounds, warmup) from --duration, --rounds, --warmup: 10 s, 3 rounds, 1 s; --quick: 3 s, 1 round."""
    duration = args.duration if args.duration is not None else (3 if args.quick else 10)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    warmup = args.warmup if args.warmup is not None else 1
    return duration, rounds, warmup
