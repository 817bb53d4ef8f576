"""Argument types that refuse values out of range when the arguments are parsed, in one
line, before any work (argparse's `type=int` takes `--k -5` and `--batch-size 0`)."""

from __future__ import annotations

import argparse
import math


def _number(kind, low, low_open: bool, said: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or value < low or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"{text} must be {said}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = _number(int, 1, False, "a positive integer")
non_negative_int = _number(int, 0, False, "0 or more")
positive_float = _number(float, 0.0, True, "a positive number")


DEVICE_HELP = "where the network runs (default: gpu when torch sees one, else cpu)"


def default_device() -> str:
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def recipe_help() -> str:
    from viewkit.views.recipes import PRESETS  # plain dataclasses: no torch, DALI or numba

    return f"a preset ({', '.join(PRESETS)}) or a recipe YAML file"
