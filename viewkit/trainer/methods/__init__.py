"""The twelve methods, one file per paper, by name. A dict of records, nothing more; the
contract each method keeps with the engine is in base.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from viewkit.trainer.methods import byol, leoclr, logo, moco, regioncl, scd, sgcl, simclr, simsiam
from viewkit.trainer.methods.base import Method


@dataclass(frozen=True)
class MethodEntry:
    build: Callable[..., Method]  # (arch, **options) -> the method
    defaults: dict  # every option and its default: a config may set only these
    recipe: str  # the views preset a config gets unless it names another


METHODS = {
    "moco_v2": MethodEntry(moco.MoCoV2, moco.DEFAULTS, "moco_v2"),
    "byol": MethodEntry(byol.BYOL, byol.DEFAULTS, "byol"),
    "simsiam": MethodEntry(simsiam.SimSiam, simsiam.DEFAULTS, "simsiam"),
    "simclr": MethodEntry(simclr.SimCLR, simclr.DEFAULTS, "simclr"),
    "leoclr": MethodEntry(leoclr.build, leoclr.DEFAULTS, "leoclr"),
    "logo_moco": MethodEntry(logo.LoGo, logo.DEFAULTS, "logo"),
    "logo_simsiam": MethodEntry(logo.LoGoSimSiam, logo.SIMSIAM_DEFAULTS, "logo"),
    "regioncl": MethodEntry(regioncl.RegionCL, regioncl.DEFAULTS, "regioncl"),
    "regioncl_simsiam": MethodEntry(regioncl.RegionCLSimSiam, regioncl.SIMSIAM_DEFAULTS, "regioncl"),
    "sgcl": MethodEntry(sgcl.build, sgcl.DEFAULTS, "sgcl"),
    "scd_moco": MethodEntry(scd.SCDMoCo, scd.MOCO_DEFAULTS, "moco_v2"),
    "scd_byol": MethodEntry(scd.SCDBYOL, scd.BYOL_DEFAULTS, "scd"),
}


def build_method(name: str, arch: str, options: dict) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; one of {', '.join(sorted(METHODS))}")
    entry = METHODS[name]
    unknown = set(options) - set(entry.defaults)
    if unknown:
        raise ValueError(f"method {name!r} has no option(s) {sorted(unknown)}; its options: {entry.defaults}")
    return entry.build(arch, **(entry.defaults | options))
