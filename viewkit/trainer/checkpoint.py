"""Checkpoints: written atomically, holding everything `--resume` needs to continue exactly."""

from __future__ import annotations

import os
import pickle
import random
import subprocess
from pathlib import Path

import numpy as np
import torch

from viewkit.writes import writing


def git_revision() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def rng_state() -> dict:
    # numpy's state as a tensor and plain numbers, so the checkpoint loads with weights_only=True
    kind, keys, position, has_gauss, cached = np.random.get_state()
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached))
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": numpy_state}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.int64).astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, state: dict) -> None:
    """Atomic and durable: written to a temporary, flushed to disk, then renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with writing(path), open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# Checkpoints written before numpy's RNG state was stored as a tensor hold numpy arrays:
# these are the only globals beyond tensors and plain containers that a viewkit checkpoint
# needs. Anything else (a crafted pickle's os.system, say) is refused.
_NUMPY_GLOBALS = [np.ndarray, np.dtype, type(np.dtype(np.uint32)),
                  (np._core if hasattr(np, "_core") else np.core).multiarray._reconstruct]


def load(path: str | Path, needs: tuple[str, ...] = ("arch", "backbone")) -> dict:
    """A checkpoint written by `save`, holding at least the entries `needs`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint")
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():
            raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
        unsafe = ", ".join(torch.serialization.get_unsafe_globals_in_checkpoint(path)) or "unknown objects"
        raise ValueError(f"{path}: refused: it holds {unsafe}, which a viewkit checkpoint never does and which "
                         "could run code when loaded; load only checkpoints you trust") from None
    except Exception as e:  # zip and EOF errors alike: the file is not a whole checkpoint
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    missing = [key for key in needs if not isinstance(state, dict) or key not in state]
    if missing:
        raise ValueError(f"{path}: not a viewkit checkpoint, it lacks {missing}")
    return state
