"""What `viewkit bench`'s runs share: the machine a line was measured on (benchmarks record
it too), and the decoder options the arguments ask for."""

from __future__ import annotations

import argparse
import os
import platform


def machine() -> dict:
    cpu_model = platform.processor()
    try:
        cpu_model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch

    return {"cpu": cpu_model, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def decoder_options(args: argparse.Namespace) -> dict:
    return {} if args.hw_decoder_load is None else {"hw_decoder_load": args.hw_decoder_load}
