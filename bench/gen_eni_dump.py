"""Write a generated ENI cluster dump for timing ``ipam-bench import`` and the start from its state.

``python bench/gen_eni_dump.py N OUT.json``: N m5.large nodes (the objects of
``tests/data/import/eni.json`` copied), each with 3 ENIs of 9 secondary addresses (an m5.large
ENI holds 10 IPv4 addresses, its primary included) in one of three /16 subnets, and 18 pods at
the first 18 of them. Figures in docs/import.md ("Speed").
"""

from __future__ import annotations

import copy
import ipaddress
import json
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "import" / "eni.json"


def eni_dump(n_nodes: int) -> dict:
    """The dump as a ``List``.

    Parameters
    ----------
    n_nodes : int

    Returns
    -------
    dict
    """
    doc = json.loads(FIXTURE.read_text())
    node_t = next(o for o in doc["items"] if o["kind"] == "Node")
    cn_t = next(o for o in doc["items"] if o["kind"] == "CiliumNode")
    pod_t = next(o for o in doc["items"] if o["kind"] == "Pod" and o["metadata"]["name"] == "web-1")
    subnets = [ipaddress.ip_network(f"10.{k}.0.0/16") for k in range(3)]
    items = []
    for i in range(n_nodes):
        name = f"ip-node-{i:05d}"
        node = copy.deepcopy(node_t)
        node["metadata"].update(name=name, uid=name)
        cn = copy.deepcopy(cn_t)
        cn["metadata"].update(name=name, uid=f"c{name}")
        subnet = subnets[i % 3]
        base = int(subnet.network_address) + 16 + (i // 3) * 64
        enis, pool = {}, []
        for e in range(3):
            addresses = [str(ipaddress.IPv4Address(base + e * 16 + 1 + k)) for k in range(9)]
            enis[f"eni-{i}-{e}"] = {"id": f"eni-{i}-{e}", "ip": str(ipaddress.IPv4Address(base + e * 16)),
                                    "number": e, "addresses": addresses,
                                    "subnet": {"id": f"subnet-{i % 3}", "cidr": str(subnet)}}
            pool += addresses
        cn["status"]["eni"]["enis"] = enis
        cn["spec"]["ipam"]["pool"] = {a: {"resource": "eni"} for a in pool}
        cn["status"]["ipam"]["used"] = {}
        items += [node, cn]
        for p in range(18):
            pod = copy.deepcopy(pod_t)
            pod["metadata"].update(name=f"web-{i}-{p}", uid=f"web-{i}-{p}")
            pod["spec"]["nodeName"] = name
            pod["status"]["podIP"] = pool[p]
            pod["status"]["podIPs"] = [{"ip": pool[p]}]
            items.append(pod)
    return {"apiVersion": "v1", "kind": "List", "items": items}


if __name__ == "__main__":
    Path(sys.argv[2]).write_text(json.dumps(eni_dump(int(sys.argv[1]))))
