"""The argument types of ``ntm-fast``'s flags: each parses one value or raises
:class:`argparse.ArgumentTypeError` naming what it got and what it expected."""

from __future__ import annotations

import argparse
import math

from .tasks import TASKS


def task_name(value: str) -> str:
    name = value.replace("-", "_")
    if name not in TASKS:
        raise argparse.ArgumentTypeError(
            f"unknown task {value!r}; choose from {', '.join(sorted(TASKS))}"
        )
    return name


def int_at_least(value: str, least: int) -> int:
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if v < least:
        raise argparse.ArgumentTypeError(f"expected an integer >= {least}, got {v}")
    return v


def positive_int(value: str) -> int:
    return int_at_least(value, 1)


def non_negative_int(value: str) -> int:
    return int_at_least(value, 0)


def finite_float(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {v}")
    return v


def positive_float(value: str) -> float:
    v = finite_float(value)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {v}")
    return v


def key_value(value: str) -> tuple[str, int | float]:
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=NUMBER, got {value!r}")
    try:
        num: int | float = int(raw)
    except ValueError:
        try:
            num = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected KEY=NUMBER, got {value!r}") from None
    return key, num
