"""Checkpoints: written atomically, holding everything `--resume` needs to continue exactly."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import numpy as np
import torch


def git_revision() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path: str | Path, needs: tuple[str, ...] = ("arch", "backbone")) -> dict:
    """A checkpoint written by `save`, holding at least the entries `needs`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # pickle, zip and EOF errors alike: the file is not a whole checkpoint
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    missing = [key for key in needs if not isinstance(state, dict) or key not in state]
    if missing:
        raise ValueError(f"{path}: not a viewkit checkpoint, it lacks {missing}")
    return state
