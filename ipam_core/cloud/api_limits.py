"""Default request limits of the cloud APIs the cloud modes call, and of Cilium's operator client.

Figures (``cloud.apiThrottle`` overrides them; :mod:`ipam_core.modes.cloud_api`
applies them):

* Cilium operator: ``--limit-ipam-api-qps`` 4 and ``--limit-ipam-api-burst`` 20
  (cilium ``pkg/defaults/defaults.go`` ``IPAMAPIQPSLimit``, ``IPAMAPIBurst``; older
  releases had QPS 20, burst 4), one limiter for every EC2 or Azure call of the
  operator (``pkg/aws/ec2/ec2.go``, ``pkg/azure/api/api.go`` ``NewClient``).
* EC2: a token bucket per API and account and Region ("Request throttling for
  the Amazon EC2 API"): the documented example, non-mutating ``Describe*``
  actions, holds 100 tokens refilled at 20/s; the mutating actions the IPAM
  managers call (``AssignPrivateIpAddresses``, ``CreateNetworkInterface`` ...)
  are taken at the table's "mutating actions" row, 50 tokens refilled at 5/s
  (the stored copy of the page did not include the table; check it against
  your account with ``DescribeAccountAttributes``-style quotas or AWS support).
* Azure Resource Manager (since 2024, per subscription and Region): writes 200
  refilled at 10/s, deletes 200 at 10/s, reads 250 at 25/s
  (learn.microsoft.com ``azure-resource-manager/management/request-limits-and-throttling``).
"""

from __future__ import annotations

CILIUM_CLIENT_QPS = 4.0
CILIUM_CLIENT_BURST = 20
EC2_MUTATING_BUCKET = 50
EC2_MUTATING_REFILL = 5.0
AZURE_WRITE_BUCKET = 200
AZURE_WRITE_REFILL = 10.0

#: provider -> (bucket, refill per second, one bucket shared by every call kind)
CLOUD_BUCKETS = {
    "ec2": (EC2_MUTATING_BUCKET, EC2_MUTATING_REFILL, False),
    "azure": (AZURE_WRITE_BUCKET, AZURE_WRITE_REFILL, True),
}
