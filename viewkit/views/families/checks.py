"""Checks the family specs share: errors that say what to write instead."""

from __future__ import annotations


def check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(f"{name}={value} must be (min, max) with {low} <= min <= max <= {high}")


def check_augments(name: str, augments: tuple, count: int) -> None:
    if len(augments) not in (1, count):
        raise ValueError(f"{name}: give one Augment for all views or one per view ({count}), got {len(augments)}")
