"""Rules of the cloud IPAM modes, as pure (or compiled scalar) functions.

* :mod:`~ipam_core.cloud.limits`: EC2 instance limits and AWS max pods; AKS/GKE table rows.
* :mod:`~ipam_core.cloud.watermarks`: Cilium's CRD-backed pre-allocation watermarks.
* :mod:`~ipam_core.cloud.vpc_cni`: the AWS VPC CNI's warm pool targets.
* :mod:`~ipam_core.cloud.aks`: AKS pod subnet, dynamic batches and static blocks.
* :mod:`~ipam_core.cloud.gke`: GKE's max pods to node pod range table.

The engine (:mod:`ipam_core.modes.cloud_pool`) applies them to its state tables.
"""
