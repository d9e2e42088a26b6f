"""Scenario keys of the cloud network: subnets with zones, tags, sharing and reservations; node groups.

* ``cloud.subnets``: each entry a CIDR string, or a mapping ``{cidr, id, zone, tags, sharedUsed,
  sharedUsedFile, reservations}``. A plain string is a subnet with id ``subnet-<i>`` alone in zone
  ``zone-<i>`` (nodes are then spread round-robin over the subnets, as before zones existed).
  ``sharedUsed``: the fraction of the subnet's free addresses other consumers (instances, load
  balancers, endpoints) hold, placed at random with the scenario's seed; ``sharedUsedFile``: a file
  listing the addresses or CIDRs they hold, one a line. ``reservations``: subnet CIDR reservations
  ``{cidr, type: prefix | explicit}`` (EC2 ``create-subnet-cidr-reservation``).
* ``cloud.nodeGroups``: ``{name, instanceType, zones | zone, nodes | share, nodeSubnetIds,
  nodeSubnetTags, subnetIds, subnetTags}``. Nodes are dealt to the groups in proportion to
  ``nodes`` (or ``share``), each group's nodes round-robin over its zones (an ASG balancing its
  AZs); an instance launches into the subnet of its zone, among the group's node subnets, with the
  most free addresses (Karpenter's rule). ``subnetIds`` / ``subnetTags`` are the CiliumNode
  ``spec.eni.subnet-ids`` / ``subnet-tags`` its ENIs are created in.
* ``cloud.awsVpcCni.AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG`` with ``cloud.awsVpcCni.eniConfigs``
  (zone -> subnet id: one ENIConfig per zone), ``ENABLE_SUBNET_DISCOVERY``.

Each error is one line naming the dotted key and the value, as in the rest of the loader.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from ipam_core.engine.cloud_net import subnets_selected
from ipam_core.scenario._values import (as_cidr, as_list, as_mapping, as_str, check_keys, kind_of,
                                        node_group_weight, show)
from ipam_core.scenario._where import Where
from ipam_core.scenario.model import NodeGroupSpec, SubnetReservation, SubnetSpec
from ipam_core.scenario.rules import check_disjoint

SUBNET_KEYS = ("cidr", "id", "zone", "tags", "sharedUsed", "sharedUsedFile", "reservations")
RESERVATION_KEYS = ("cidr", "type")
RESERVATION_TYPES = ("prefix", "explicit")
NODE_GROUP_KEYS = ("name", "instanceType", "zone", "zones", "nodes", "share", "nodeSubnetIds", "nodeSubnetTags",
                   "subnetIds", "subnetTags")
#: the smallest prefix a reservation of type ``prefix`` may have: one /28 (EC2 prefix delegation).
PREFIX_RESERVATION_MAX_LEN = 28


def _fraction(where: Where, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        where.fail(f"{show(value)} is {kind_of(value)}; expected a fraction from 0 to below 1 (of the subnet's "
                   "free addresses other consumers hold)")
    return float(value)


def _tags(where: Where, value: object) -> tuple[tuple[str, str], ...]:
    tags = as_mapping(where, value)
    out = []
    for key, val in tags.items():
        if not isinstance(val, (str, int, float)) or isinstance(val, bool):
            (where / str(key)).fail(f"{show(val)} is {kind_of(val)}; expected a tag value (a string)")
        out.append((str(key), str(val)))
    return tuple(out)


def _names(where: Where, value: object, what: str) -> tuple[str, ...]:
    items = as_list(where, value, null_ok=False)
    if not items:
        where.fail(f"[] is empty; expected at least one {what}")
    return tuple(as_str(where / i, v, what=what).strip() for i, v in enumerate(items))


def _reservations(where: Where, value: object, net) -> tuple[SubnetReservation, ...]:
    out = []
    entries = []
    for i, raw in enumerate(as_list(where, value, null_ok=False)):
        w = where / i
        entry = as_mapping(w, raw, null_ok=False)
        check_keys(w, entry, RESERVATION_KEYS)
        if "cidr" not in entry or "type" not in entry:
            missing = "cidr" if "cidr" not in entry else "type"
            (w / missing).fail("missing; expected a reservation {cidr: ..., type: prefix | explicit}")
        cidr = as_cidr(w / "cidr", entry["cidr"], 4, what="a reservation")
        if not cidr.subnet_of(net):
            (w / "cidr").fail(f"{cidr} is not inside the subnet {net}; expected a CIDR inside it")
        kind = entry["type"]
        if kind not in RESERVATION_TYPES:
            (w / "type").fail(f"{show(kind)} is not a reservation type; expected one of: {', '.join(RESERVATION_TYPES)}")
        if kind == "prefix" and cidr.prefixlen > PREFIX_RESERVATION_MAX_LEN:
            (w / "cidr").fail(f"{cidr} is smaller than a /28; expected a prefix reservation of /28 or larger")
        entries.append((w / "cidr", cidr))
        out.append(SubnetReservation(str(cidr), kind))
    check_disjoint(entries, "reservations", "EC2 refuses overlapping subnet CIDR reservations")
    return tuple(out)


def _shared_file(where: Where, value: object, net, base: Path | None) -> str:
    """The path of a shared-use list, checked now: every line an address or CIDR inside the subnet."""
    text = as_str(where, value, what="a file path")
    path = Path(text)
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        where.fail(f"cannot read {text!r} ({exc.__class__.__name__}); expected a file listing addresses or CIDRs")
    for n, line in enumerate(lines, start=1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        try:
            entry = ipaddress.ip_network(item, strict=False)
        except ValueError:
            where.fail(f"{text}:{n}: {item!r} is not an address or CIDR; expected one IPv4 address or CIDR a line")
        if entry.version != 4 or not entry.subnet_of(net):
            where.fail(f"{text}:{n}: {item} is not inside the subnet {net}; expected addresses of the subnet")
    return str(path)


def read_subnets(where: Where, raw: list, base: Path | None) -> tuple[SubnetSpec, ...]:
    """``cloud.subnets``: CIDR strings or mappings, checked (no overlap, unique ids).

    Parameters
    ----------
    where : Where
        ``cloud.subnets``.
    raw : list
        Its entries.
    base : pathlib.Path or None
        The scenario file's folder (``sharedUsedFile`` paths are relative to it).

    Returns
    -------
    tuple of SubnetSpec

    Raises
    ------
    ConfigError
        An entry that is neither a CIDR nor a mapping, an unknown key, a missing ``cidr``,
        overlapping subnets or reservations, a duplicate id, a bad fraction, tag or file.
    """
    specs = []
    nets = []
    for i, entry in enumerate(raw):
        w = where / i
        if isinstance(entry, str):
            net = as_cidr(w, entry, 4, what="a subnet")
            specs.append(SubnetSpec(str(net), f"subnet-{i}", f"zone-{i}"))
            nets.append((w, net))
            continue
        if not isinstance(entry, dict):
            w.fail(f"{show(entry)} is {kind_of(entry)}; expected a subnet CIDR or a mapping with keys "
                   f"{', '.join(SUBNET_KEYS)}")
        check_keys(w, entry, SUBNET_KEYS)
        if "cidr" not in entry:
            (w / "cidr").fail("missing; expected the subnet's IPv4 CIDR")
        net = as_cidr(w / "cidr", entry["cidr"], 4, what="a subnet")
        nets.append((w / "cidr", net))
        sid = as_str(w / "id", entry.get("id", f"subnet-{i}"), what="a subnet id").strip()
        zone = as_str(w / "zone", entry.get("zone", f"zone-{i}"), what="an availability zone").strip()
        shared_file = _shared_file(w / "sharedUsedFile", entry["sharedUsedFile"], net, base) \
            if "sharedUsedFile" in entry else None
        specs.append(SubnetSpec(
            cidr=str(net), id=sid, zone=zone, tags=_tags(w / "tags", entry.get("tags")),
            shared_used=_fraction(w / "sharedUsed", entry.get("sharedUsed", 0.0)), shared_used_file=shared_file,
            reservations=_reservations(w / "reservations", entry.get("reservations", []), net),
        ))
    check_disjoint(nets, "subnets", "a VPC's subnets never overlap")
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.id in seen:
            (where / i / "id").fail(f"{spec.id!r} is also the id of subnet {seen[spec.id]}; expected unique ids")
        seen[spec.id] = i
    return tuple(specs)


def _check_ids(where: Where, ids: tuple[str, ...], subnets: tuple[SubnetSpec, ...]) -> None:
    known = {s.id for s in subnets}
    for i, sid in enumerate(ids):
        if sid not in known:
            (where / i).fail(f"{sid!r} is not a subnet id; expected one of: {', '.join(s.id for s in subnets)}")


def read_node_groups(where: Where, raw: object, subnets: tuple[SubnetSpec, ...], default_instance: str
                     ) -> tuple[NodeGroupSpec, ...]:
    """``cloud.nodeGroups``, checked against the subnets.

    Parameters
    ----------
    where : Where
        ``cloud.nodeGroups``.
    raw : object
        Its value.
    subnets : tuple of SubnetSpec
    default_instance : str
        ``cluster.instanceType``: a group's type when it names none.

    Returns
    -------
    tuple of NodeGroupSpec

    Raises
    ------
    ConfigError
        Not a non-empty list of mappings, an unknown key, a duplicate name, both or neither of
        ``zone`` / ``zones``-style keys misused, a count or share <= 0, an unknown subnet id or zone,
        or a zone in which none of the group's node subnets lies.
    """
    items = as_list(where, raw, null_ok=False)
    if not items:
        where.fail("[] is empty; expected at least one node group (or leave nodeGroups out)")
    zones_known = list(dict.fromkeys(s.zone for s in subnets))
    groups = []
    names: set[str] = set()
    for i, entry in enumerate(items):
        w = where / i
        group = as_mapping(w, entry, null_ok=False)
        check_keys(w, group, NODE_GROUP_KEYS)
        name = as_str(w / "name", group.get("name", f"group-{i}"), what="a node group name").strip()
        if name in names:
            (w / "name").fail(f"{name!r} names two node groups; expected unique names")
        names.add(name)
        instance = as_str(w / "instanceType", group.get("instanceType", default_instance),
                          what="an EC2 instance type").strip()
        weight = node_group_weight(w, group)
        if "zone" in group and "zones" in group:
            (w / "zones").fail("is set with zone; expected one of zone or zones")
        zones: tuple[str, ...] = ()
        if "zone" in group:
            zones = (as_str(w / "zone", group["zone"], what="an availability zone").strip(),)
        elif "zones" in group:
            zones = _names(w / "zones", group["zones"], "availability zone")
        for j, zone in enumerate(zones):
            if zone not in zones_known:
                wz = w / "zone" if "zone" in group else w / "zones" / j
                wz.fail(f"{zone!r} is the zone of no subnet; expected one of: {', '.join(zones_known)}")
        fields = {}
        for k in ("nodeSubnetIds", "subnetIds"):
            fields[k] = _names(w / k, group[k], "subnet id") if k in group else ()
            _check_ids(w / k, fields[k], subnets)
        for k in ("nodeSubnetTags", "subnetTags"):
            fields[k] = _tags(w / k, group.get(k))
        launch = subnets_selected(subnets, fields["nodeSubnetIds"], fields["nodeSubnetTags"])
        launch_zones = list(dict.fromkeys(subnets[s].zone for s in launch))
        if not launch:
            (w / "nodeSubnetTags").fail(f"{show(dict(fields['nodeSubnetTags']))} matches no subnet; expected the "
                                        "tags of at least one subnet")
        for j, zone in enumerate(zones):
            if zone not in launch_zones:
                wz = w / "zone" if "zone" in group else w / "zones" / j
                wz.fail(f"{zone!r} has none of the group's node subnets; expected one of: {', '.join(launch_zones)}")
        groups.append(NodeGroupSpec(
            name=name, instance_type=instance, weight=weight, zones=zones or tuple(launch_zones),
            node_subnet_ids=fields["nodeSubnetIds"], node_subnet_tags=fields["nodeSubnetTags"],
            subnet_ids=fields["subnetIds"], subnet_tags=fields["subnetTags"],
        ))
    return tuple(groups)


def read_eni_configs(where: Where, raw: object, subnets: tuple[SubnetSpec, ...]) -> tuple[tuple[str, str], ...]:
    """``cloud.awsVpcCni.eniConfigs``: zone -> subnet id, each subnet in its zone (one ENIConfig per AZ).

    Raises
    ------
    ConfigError
        Not a mapping, an unknown zone or subnet id, or a subnet outside the zone it is named for.
    """
    configs = as_mapping(where, raw, null_ok=False)
    by_id = {s.id: s for s in subnets}
    out = []
    for zone, sid in configs.items():
        w = where / str(zone)
        sid = as_str(w, sid, what="a subnet id").strip()
        if sid not in by_id:
            w.fail(f"{sid!r} is not a subnet id; expected one of: {', '.join(by_id)}")
        if by_id[sid].zone != str(zone):
            w.fail(f"{sid!r} is in zone {by_id[sid].zone!r}; expected a subnet of zone {str(zone)!r} (an ENIConfig "
                   "names a subnet of its own AZ)")
        out.append((str(zone), sid))
    return tuple(out)
