"""Methods by name: (class or builder, defaults, recipe preset). A dict, nothing more."""

from __future__ import annotations

from viewkit.trainer import byol, leoclr, logo, moco, regioncl, scd, sgcl, simclr, simsiam

METHODS = {
    "moco_v2": (moco.MoCoV2, moco.DEFAULTS, "moco_v2"),
    "byol": (byol.BYOL, byol.DEFAULTS, "byol"),
    "simsiam": (simsiam.SimSiam, simsiam.DEFAULTS, "simsiam"),
    "simclr": (simclr.SimCLR, simclr.DEFAULTS, "simclr"),
    "leoclr": (leoclr.build, leoclr.DEFAULTS, "leoclr"),
    "logo_moco": (logo.LoGo, logo.DEFAULTS, "logo"),
    "logo_simsiam": (logo.LoGoSimSiam, logo.SIMSIAM_DEFAULTS, "logo"),
    "regioncl": (regioncl.RegionCL, regioncl.DEFAULTS, "regioncl"),
    "regioncl_simsiam": (regioncl.RegionCLSimSiam, regioncl.SIMSIAM_DEFAULTS, "regioncl"),
    "sgcl": (sgcl.build, sgcl.DEFAULTS, "sgcl"),
    "scd_moco": (scd.SCDMoCo, scd.MOCO_DEFAULTS, "moco_v2"),
    "scd_byol": (scd.SCDBYOL, scd.BYOL_DEFAULTS, "scd"),
}


def build_method(name: str, arch: str, options: dict):
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; one of {', '.join(sorted(METHODS))}")
    cls, defaults, _ = METHODS[name]
    unknown = set(options) - set(defaults)
    if unknown:
        raise ValueError(f"method {name!r} has no option(s) {sorted(unknown)}; its options: {defaults}")
    return cls(arch, **(defaults | options))
