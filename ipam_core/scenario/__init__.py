"""Scenario files: a cluster, its IPAM settings and its workload, in upstream vocabulary.

A scenario is YAML written with Cilium Helm values, kube-controller-manager flags, kubelet
``maxPods`` and pasted ``CiliumPodIPPool``/``Namespace`` manifests; defaults are upstream's.
See docs/scenario.md for every key.

>>> from ipam_core.scenario import load_scenario
>>> s = load_scenario("default")          # or a path to a .yaml file
>>> s.ipam.cluster_pool_v4
('10.0.0.0/8',)
"""

from ipam_core.scenario._values import parse_duration
from ipam_core.scenario.defaults import ALL_MODES, CLOUD_MODES, DEFAULT_MODES, KNOWN_MODES, SCHEDULERS
from ipam_core.scenario.loader import (builtin_scenarios, check_scenario_modes, load_scenario, parse_scenario,
                                      scenario_for_mode)
from ipam_core.scenario.model import (ClusterSpec, CloudSpec, IPAMSpec, LabelRequirement, LabelSelector, NamespaceSpec,
                                      PoolSpec, Scenario, Timing)
from ipam_core.scenario.selection import PoolSelectionError, select_pool

__all__ = [
    "ALL_MODES", "CLOUD_MODES", "DEFAULT_MODES", "KNOWN_MODES", "SCHEDULERS",
    "ClusterSpec", "CloudSpec", "IPAMSpec", "LabelRequirement", "LabelSelector", "NamespaceSpec", "PoolSpec", "Scenario",
    "Timing", "PoolSelectionError",
    "builtin_scenarios", "check_scenario_modes", "load_scenario", "parse_duration", "parse_scenario",
    "scenario_for_mode", "select_pool",
]
