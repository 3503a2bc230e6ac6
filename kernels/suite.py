"""The kernel suite now ships in the package as ``futhark_lab.suite`` (importable wherever futhark-lab is
installed); this module keeps ``import kernels.suite`` working from a checkout.  The .fut files here are links to
``futhark_lab/suite/``."""

from futhark_lab.suite import HERE, KERNELS, MEM_SIZES, NP, for_source, get  # noqa: F401
