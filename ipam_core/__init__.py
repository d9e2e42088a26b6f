"""ipam_core: simulate and benchmark Kubernetes / Cilium pod IPAM modes."""

from ipam_core.bitmap import Bitmap

__all__ = ["Bitmap"]

from ipam_core.cidrset import CIDRSet
from ipam_core.podiprange import PodIPRange

__all__ += ["CIDRSet", "PodIPRange"]
