from ipam_core.cidrset import CIDRSet  # noqa: E402
from ipam_core.podiprange import PodIPRange  # noqa: E402
