"""The Cilium CRD fields the importer reads, as strict pydantic models.

CiliumNode (``cilium.io/v2``, cilium ``pkg/k8s/apis/cilium.io/v2/types.go`` and
``pkg/ipam/types/types.go``) and CiliumPodIPPool (``cilium.io/v2alpha1`` or ``v2``,
``pkg/k8s/apis/cilium.io/v2alpha1/ippool_types.go``). Only the fields the importer reads are
declared; any other field is ignored, as a client of an older CRD version would. Types are
strict (the API server's CRD validation is): ``"8"`` for an integer is an error. pydantic is a
core dependency (typer and the ``kubernetes`` client's models use it too).
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class _CRD(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)

    @classmethod
    def from_dict(cls, raw: dict):
        """Same as ``model_validate`` (unknown fields are ignored already)."""
        return cls.model_validate(raw)


class Metadata(_CRD):
    """``metadata``: the name, labels and annotations."""

    name: str
    namespace: Optional[str] = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class PoolAllocation(_CRD):
    """``spec.ipam.pools.allocated[]``: the CIDRs the operator gave a node from one pool."""

    pool: str
    cidrs: list[str] = Field(default_factory=list)


class PoolDemand(_CRD):
    """``spec.ipam.pools.requested[].needed``."""

    ipv4_addrs: int = Field(0, alias="ipv4-addrs", ge=0)
    ipv6_addrs: int = Field(0, alias="ipv6-addrs", ge=0)


class PoolRequest(_CRD):
    """``spec.ipam.pools.requested[]``: what the agent asks of one pool."""

    pool: str
    needed: PoolDemand = Field(default_factory=PoolDemand)


class IPAMPools(_CRD):
    """``spec.ipam.pools`` (multi-pool)."""

    requested: list[PoolRequest] = Field(default_factory=list)
    allocated: list[PoolAllocation] = Field(default_factory=list)


class AllocationIP(_CRD):
    """An entry of ``spec.ipam.pool`` / ``status.ipam.used``: the ENI (or NIC) and the endpoint."""

    resource: str = ""
    owner: str = ""


class NodeIPAMSpec(_CRD):
    """``spec.ipam``: podCIDRs (cluster-pool, kubernetes), pools (multi-pool), pool and watermarks (ENI)."""

    pod_cidrs: list[str] = Field(default_factory=list, alias="podCIDRs")
    pools: IPAMPools = Field(default_factory=IPAMPools)
    pool: dict[str, AllocationIP] = Field(default_factory=dict)
    min_allocate: Optional[int] = Field(None, alias="min-allocate", ge=0)
    max_allocate: Optional[int] = Field(None, alias="max-allocate", ge=0)
    pre_allocate: Optional[int] = Field(None, alias="pre-allocate", ge=0)
    max_above_watermark: Optional[int] = Field(None, alias="max-above-watermark", ge=0)


class ENISpec(_CRD):
    """``spec.eni`` (cilium ``pkg/aws/eni/types/types.go`` ``ENISpec``)."""

    instance_type: Optional[str] = Field(None, alias="instance-type")
    first_interface_index: Optional[int] = Field(None, alias="first-interface-index", ge=0)
    subnet_ids: list[str] = Field(default_factory=list, alias="subnet-ids")
    availability_zone: Optional[str] = Field(None, alias="availability-zone")
    disable_prefix_delegation: bool = Field(False, alias="disable-prefix-delegation")


class NodeAddress(_CRD):
    """``spec.addresses[]``: ``CiliumInternalIP`` is the agent's router (``cilium_host``) address."""

    type: str = ""
    ip: str = ""


class HealthAddressing(_CRD):
    """``spec.health``: the agent's health endpoint addresses."""

    ipv4: Optional[str] = None
    ipv6: Optional[str] = None


class CiliumNodeSpec(_CRD):
    """``spec`` of a CiliumNode."""

    ipam: NodeIPAMSpec = Field(default_factory=NodeIPAMSpec)
    eni: Optional[ENISpec] = None
    addresses: list[NodeAddress] = Field(default_factory=list)
    health: HealthAddressing = Field(default_factory=HealthAddressing)


class ENISubnet(_CRD):
    """``status.eni.enis[].subnet``."""

    id: str = ""
    cidr: Optional[str] = None


class ENI(_CRD):
    """``status.eni.enis[]`` (cilium ``pkg/aws/eni/types/types.go`` ``ENI``)."""

    id: str
    ip: Optional[str] = None
    number: Optional[int] = Field(None, ge=0)
    addresses: list[str] = Field(default_factory=list)
    prefixes: list[str] = Field(default_factory=list)
    subnet: ENISubnet = Field(default_factory=ENISubnet)


class ENIStatus(_CRD):
    """``status.eni``."""

    enis: dict[str, ENI] = Field(default_factory=dict)


class AzureAddress(_CRD):
    """``status.azure.interfaces[].addresses[]`` (cilium ``pkg/azure/types`` ``AzureAddress``)."""

    ip: str = ""
    subnet: str = ""
    state: str = ""


class AzureInterface(_CRD):
    """``status.azure.interfaces[]`` (cilium ``pkg/azure/types`` ``AzureInterface``).

    Its addresses leave out the NIC's primary IP configuration (``pkg/azure/api/api.go``
    ``parseInterface``, unless ``azure-use-primary-address``); ``cidr`` is its subnet's.
    """

    id: str = ""
    name: str = ""
    addresses: list[AzureAddress] = Field(default_factory=list)
    cidr: Optional[str] = None


class AzureStatus(_CRD):
    """``status.azure``."""

    interfaces: list[AzureInterface] = Field(default_factory=list)


class OperatorStatus(_CRD):
    """``status.ipam.operator-status``."""

    error: str = ""


class IPAMStatus(_CRD):
    """``status.ipam``: addresses in use and the operator's error."""

    used: dict[str, AllocationIP] = Field(default_factory=dict)
    operator_status: OperatorStatus = Field(default_factory=OperatorStatus, alias="operator-status")


class CiliumNodeStatus(_CRD):
    """``status`` of a CiliumNode."""

    ipam: IPAMStatus = Field(default_factory=IPAMStatus)
    eni: Optional[ENIStatus] = None
    azure: Optional[AzureStatus] = None


class CiliumNode(_CRD):
    """A CiliumNode (``cilium.io/v2``)."""

    api_version: Literal["cilium.io/v2"] = Field(alias="apiVersion")
    kind: Literal["CiliumNode"]
    metadata: Metadata
    spec: CiliumNodeSpec = Field(default_factory=CiliumNodeSpec)
    status: CiliumNodeStatus = Field(default_factory=CiliumNodeStatus)


class PoolFamily(_CRD):
    """``spec.ipv4`` / ``spec.ipv6`` of a CiliumPodIPPool."""

    cidrs: list[str] = Field(min_length=1, max_length=32)
    mask_size: int = Field(alias="maskSize", ge=1, le=128)


class PoolSpec(_CRD):
    """``spec`` of a CiliumPodIPPool; the selectors are checked with the Kubernetes LabelSelector model."""

    ipv4: Optional[PoolFamily] = None
    ipv6: Optional[PoolFamily] = None
    pod_selector: Optional[dict] = Field(None, alias="podSelector")
    namespace_selector: Optional[dict] = Field(None, alias="namespaceSelector")


class CiliumPodIPPool(_CRD):
    """A CiliumPodIPPool (``cilium.io/v2alpha1`` or ``cilium.io/v2``)."""

    api_version: Literal["cilium.io/v2alpha1", "cilium.io/v2"] = Field(alias="apiVersion")
    kind: Literal["CiliumPodIPPool"]
    metadata: Metadata
    spec: PoolSpec
