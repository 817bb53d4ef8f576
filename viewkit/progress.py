"""Elapsed time for a step that has no count to show, once it has run long enough to be noticed.

A progress bar needs units of work; compiling the view kernels on the first run after an
install (about 15 s) has none. `ticking` shows the step's name and its seconds so far,
and stays silent for the usual case where the step ends within `after` seconds. One line
ticks at a time: a step inside another that already shows its time stays silent.
"""

from __future__ import annotations

import contextlib
import threading
import time

from tqdm import tqdm

_showing = threading.Lock()


@contextlib.contextmanager
def ticking(label: str, after: float = 2.0, every: float = 1.0, file=None):
    done = threading.Event()
    started = time.monotonic()

    def tick():
        if done.wait(after) or not _showing.acquire(blocking=False):
            return
        try:
            with tqdm(desc=f"{label}: {time.monotonic() - started:.0f} s", bar_format="{desc}", file=file) as bar:
                while not done.wait(every):
                    bar.set_description_str(f"{label}: {time.monotonic() - started:.0f} s")
                bar.set_description_str(f"{label}: done in {time.monotonic() - started:.0f} s", refresh=False)
        finally:
            _showing.release()

    thread = threading.Thread(target=tick, name="ticking", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
