"""Per-instance network limits of the cloud modes, read from the shipped CSV files.

EC2 instance types: how many ENIs an instance takes and how many IPv4 addresses
each ENI holds, as the AWS VPC CNI ships them (aws/amazon-vpc-cni-k8s
``pkg/vpc/vpc_ip_resource_limit.go`` joined to ``misc/eni-max-pods.txt``), and
the max-pods figure AWS derives from them (awslabs/amazon-eks-ami
``templates/al2/runtime/max-pods-calculator.sh``). AKS and GKE rows come from
``cloud_pod_cidr_limits.csv`` (vendor documentation, one URL per row).
"""

from __future__ import annotations

import csv
import difflib
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ipam_core.errors import ConfigError

INSTANCE_LIMITS_CSV = "aws_vpc_cni_instance_limits.csv"
POD_CIDR_LIMITS_CSV = "cloud_pod_cidr_limits.csv"

#: /28 prefix delegation: addresses per prefix (cilium ``option.ENIPDBlockSizeIPv4``, EC2 ``Ipv4PrefixCount``).
PREFIX_SIZE = 16
#: Addresses the cloud keeps in every subnet: the first four and the last (AWS VPC and Azure VNet subnets).
SUBNET_RESERVED_LOW = 4
SUBNET_RESERVED_HIGH = 1
#: max-pods-calculator.sh: pods per node are capped at 110 on instances with at most 30 vCPUs, else 250.
MAX_PODS_CEILING_LOW_CPU = 110
MAX_PODS_CEILING_HIGH_CPU = 250
LOW_CPU_LIMIT = 30

_INSTANCE_COLUMNS = ("instance_type", "enis", "ipv4_per_eni", "max_pods", "max_pods_custom_networking",
                     "max_pods_prefix_delegation_uncapped", "network_cards", "default_card_max_enis",
                     "hypervisor", "is_bare_metal")


@dataclass(frozen=True)
class InstanceLimits:
    """Network limits of one EC2 instance type.

    Attributes
    ----------
    instance_type : str
    enis : int
        ENIs the instance can attach (``vpc_ip_resource_limit.go`` ``ENILimit`` of the default card).
    ipv4_per_eni : int
        IPv4 addresses per ENI, the ENI's primary address included.
    max_pods : int
        ``eni-max-pods.txt``: ``enis * (ipv4_per_eni - 1) + 2``.
    hypervisor : str
        ``nitro``, ``xen`` or ``unknown``.
    is_bare_metal : bool
    network_cards : int
    """

    instance_type: str
    enis: int
    ipv4_per_eni: int
    max_pods: int
    hypervisor: str
    is_bare_metal: bool
    network_cards: int = 1

    @property
    def secondary_per_eni(self) -> int:
        """Secondary addresses (or /28 prefixes) one ENI holds: its primary address is not for pods."""
        return max(self.ipv4_per_eni - 1, 0)

    @property
    def supports_prefix_delegation(self) -> bool:
        """Nitro and bare-metal instances take /28 prefixes (cilium ``pkg/aws/eni/node.go`` ``IsPrefixDelegated``)."""
        return self.hypervisor == "nitro" or self.is_bare_metal


def _read_rows(text: str, where: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in columns if c not in (reader.fieldnames or ())]
    if missing:
        raise ConfigError(f"{where}: missing column {missing[0]!r}; expected columns {', '.join(columns)}")
    return list(reader)


def _int(where: str, line: int, row: dict[str, str], column: str) -> int:
    text = (row.get(column) or "").strip()
    if not text.isdigit():
        raise ConfigError(f"{where}:{line}: {column} {text!r} is not a whole number; expected an integer >= 0")
    return int(text)


def parse_instance_limits(text: str, where: str = INSTANCE_LIMITS_CSV) -> dict[str, InstanceLimits]:
    """Parse the instance-limits CSV text.

    Parameters
    ----------
    text : str
        CSV with the columns of ``aws_vpc_cni_instance_limits.csv``.
    where : str
        Name used in error messages.

    Returns
    -------
    dict of str to InstanceLimits
        Keyed by instance type.

    Raises
    ------
    ConfigError
        A missing column, a non-numeric count, a duplicated instance type, or a row whose
        ``max_pods`` is not ``enis * (ipv4_per_eni - 1) + 2`` (the file's own rule).
    """
    out: dict[str, InstanceLimits] = {}
    for line, row in enumerate(_read_rows(text, where, _INSTANCE_COLUMNS), start=2):
        name = (row["instance_type"] or "").strip()
        if not name:
            raise ConfigError(f"{where}:{line}: instance_type is empty; expected an EC2 instance type")
        if name in out:
            raise ConfigError(f"{where}:{line}: instance type {name!r} is listed twice; expected it once")
        enis, per_eni, max_pods = (_int(where, line, row, c) for c in ("enis", "ipv4_per_eni", "max_pods"))
        if max_pods != enis * max(per_eni - 1, 0) + 2:
            raise ConfigError(f"{where}:{line}: max_pods {max_pods} for {name} is not enis*(ipv4_per_eni-1)+2 = "
                              f"{enis * max(per_eni - 1, 0) + 2}; expected the eni-max-pods.txt rule")
        cards = int(row["network_cards"]) if (row["network_cards"] or "").strip().isdigit() else 1
        out[name] = InstanceLimits(name, enis, per_eni, max_pods, (row["hypervisor"] or "unknown").strip(),
                                   (row["is_bare_metal"] or "").strip().lower() == "true", cards)
    return out


@lru_cache(maxsize=1)
def _packaged_instance_limits() -> dict[str, InstanceLimits]:
    text = resources.files("ipam_core").joinpath("data", INSTANCE_LIMITS_CSV).read_text(encoding="utf-8")
    return parse_instance_limits(text)


def load_instance_limits(path: str | Path | None = None) -> dict[str, InstanceLimits]:
    """The EC2 instance limits table: the packaged copy, or a CSV file of the same shape.

    Parameters
    ----------
    path : str or pathlib.Path, optional
        A CSV with the columns of the shipped ``aws_vpc_cni_instance_limits.csv``.

    Returns
    -------
    dict of str to InstanceLimits

    Raises
    ------
    ConfigError
        The file cannot be read or is malformed (see :func:`parse_instance_limits`).
    """
    if path is None:
        return _packaged_instance_limits()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read instance limits file {str(path)!r}: {exc.__class__.__name__}") from None
    return parse_instance_limits(text, str(path))


def instance_limits(instance_type: str, table: dict[str, InstanceLimits] | None = None) -> InstanceLimits:
    """Limits of one instance type.

    Parameters
    ----------
    instance_type : str
        EC2 instance type, e.g. ``m5.large``.
    table : dict, optional
        From :func:`load_instance_limits`; the packaged table by default.

    Returns
    -------
    InstanceLimits

    Raises
    ------
    ConfigError
        Unknown instance type (naming the closest known one).
    """
    table = _packaged_instance_limits() if table is None else table
    try:
        return table[instance_type]
    except KeyError:
        close = difflib.get_close_matches(str(instance_type), list(table), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown EC2 instance type {instance_type!r}{hint}; expected one of the "
                          f"{len(table)} types in {INSTANCE_LIMITS_CSV}") from None


def aws_max_pods(limits: InstanceLimits, *, prefix_delegation: bool = False, custom_networking: bool = False,
                 max_eni: int | None = None, vcpus: int | None = None) -> int:
    """Max pods AWS computes for an instance (EKS ``max-pods-calculator.sh``).

    Parameters
    ----------
    limits : InstanceLimits
    prefix_delegation : bool
        ``ENABLE_PREFIX_DELEGATION``: each ENI slot holds a /28 (16 addresses); Nitro and
        bare-metal instances only, others fall back to secondary IPs as upstream does.
    custom_networking : bool
        ``AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG``: the primary ENI takes no pods.
    max_eni : int, optional
        ``MAX_ENI`` / ``--cni-max-eni``.
    vcpus : int, optional
        The instance's vCPUs. The calculator caps max pods at 110 (≤ 30 vCPUs) or 250.
        Without it, secondary-IP mode gives the uncapped ``eni-max-pods.txt`` figure (what
        the EKS bootstrap uses) and prefix delegation the 110 ceiling (the CSV has no vCPU
        counts; the lower ceiling is the safe reading).

    Returns
    -------
    int
        ``enis * (ipv4_per_eni - 1) + 2``, or ``enis * (ipv4_per_eni - 1) * 16 + 2`` with
        prefix delegation, ENIs reduced by ``MAX_ENI`` and custom networking, then capped.
    """
    enis = limits.enis if max_eni is None else min(max_eni, limits.enis)
    if custom_networking:
        enis -= 1
    enis = max(enis, 0)
    pd = prefix_delegation and limits.supports_prefix_delegation
    per_eni = limits.secondary_per_eni * (PREFIX_SIZE if pd else 1)
    pods = enis * per_eni + 2
    if vcpus is not None:
        return min(pods, MAX_PODS_CEILING_LOW_CPU if vcpus <= LOW_CPU_LIMIT else MAX_PODS_CEILING_HIGH_CPU)
    return min(pods, MAX_PODS_CEILING_LOW_CPU) if pd else pods


# ---------------------------------------------------------------------------- AKS and GKE rows
@dataclass(frozen=True)
class PodCIDRRow:
    """One row of ``cloud_pod_cidr_limits.csv``."""

    provider: str
    ipam_mode: str
    max_pods_lo: int | None
    max_pods_hi: int | None
    default_max_pods: int | None
    per_node_block: str
    addresses_per_block: int | None
    allocation_rule: str
    source: str


def _opt_int(text: str) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


@lru_cache(maxsize=1)
def pod_cidr_rows() -> tuple[PodCIDRRow, ...]:
    """Every row of the packaged ``cloud_pod_cidr_limits.csv``, in file order.

    Returns
    -------
    tuple of PodCIDRRow
    """
    text = resources.files("ipam_core").joinpath("data", POD_CIDR_LIMITS_CSV).read_text(encoding="utf-8")
    rows = _read_rows(text, POD_CIDR_LIMITS_CSV, ("provider", "ipam_mode", "max_pods_lo", "max_pods_hi",
                                                   "per_node_block", "addresses_per_block", "source"))
    return tuple(PodCIDRRow(r["provider"], r["ipam_mode"], _opt_int(r["max_pods_lo"]), _opt_int(r["max_pods_hi"]),
                            _opt_int(r.get("default_max_pods", "")), r["per_node_block"],
                            _opt_int(r["addresses_per_block"]), r.get("allocation_rule", ""), r["source"])
                 for r in rows)


def pod_cidr_row(provider: str, ipam_mode: str) -> PodCIDRRow:
    """The first row of ``cloud_pod_cidr_limits.csv`` for a provider and IPAM mode.

    Raises
    ------
    KeyError
        No such row (a programming error: callers name rows that ship).
    """
    for row in pod_cidr_rows():
        if row.provider == provider and row.ipam_mode == ipam_mode:
            return row
    raise KeyError((provider, ipam_mode))


def eni_ipv4_per_interface(scenario, instance_type: str) -> int:
    """Addresses an ENI of ``instance_type`` holds (the instance-limits table's ``ipv4_per_eni``).

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
        Its ``cloud.instanceLimitsFile`` (or the packaged table).
    instance_type : str

    Returns
    -------
    int
    """
    return instance_limits(instance_type, load_instance_limits(scenario.ipam.cloud.instance_limits_file)).ipv4_per_eni
