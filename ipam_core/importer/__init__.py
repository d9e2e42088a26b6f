"""``ipam-bench import``: a cluster's own state (kubectl and helm dumps) as a scenario.

The pieces, each one job:

* :mod:`.dumps`: read ``kubectl get ... -o json`` files into typed objects (the official
  ``kubernetes`` client's models for Node, Pod, Namespace and Event; :mod:`.crds` for the
  Cilium CRDs);
* :mod:`.helm`: ``helm get values cilium -o yaml`` into the scenario's ``cilium:`` section;
* :mod:`.cluster`: nodes, CiliumNodes and pods into one :class:`~.cluster.ClusterState`
  (each node's CIDRs, each pod's addresses, pools), checked against each other;
* :mod:`.events`: ``kubectl get events -o json`` into pod lifetimes;
* :mod:`.scenario`: the scenario document, the replay workload and the initial-state file;
* :mod:`.write`: everything written into ``--out`` as one run folder, after the scenario loads.

>>> from ipam_core.importer import import_cluster, write_import
>>> imported = import_cluster(["dump.json"], helm_values="values.yaml")   # doctest: +SKIP
>>> write_import(imported, "out/imported")                                 # doctest: +SKIP
"""

from ipam_core.importer.pipeline import Imported, import_cluster
from ipam_core.importer.write import IMPORT_FILES, write_import

__all__ = ["IMPORT_FILES", "Imported", "import_cluster", "write_import"]
