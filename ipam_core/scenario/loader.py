"""Load a scenario file (or a built-in one) into a validated :class:`Scenario`."""

from __future__ import annotations

import re
from dataclasses import replace
from importlib import resources
from pathlib import Path

import yaml

from ipam_core.errors import ConfigError
from ipam_core.scenario import defaults as d
from ipam_core.scenario._values import as_duration, as_int, as_list, as_mapping, as_str, check_keys, show
from ipam_core.scenario._where import Source, Where, load_yaml
from ipam_core.scenario import limits as L
from ipam_core.scenario.calico import KINDS as CALICO_KINDS
from ipam_core.scenario.calico import LIST_KINDS as CALICO_LIST_KINDS
from ipam_core.scenario.calico import namespace_pools, read_calico_manifests
from ipam_core.scenario.manifests import read_manifests
from ipam_core.scenario.model import ClusterSpec, IPAMSpec, PoolSpec, Scenario
from ipam_core.scenario.node_labels import read_node_labels
from ipam_core.scenario.rules import check_disjoint, check_mode
from ipam_core.scenario.cloud import read_cloud
from ipam_core.scenario.initial_state import read_initial_state
from ipam_core.scenario.sections import read_cilium, read_kcm, read_mode, read_timing
from ipam_core.scenario.workload_checks import (check_replay, check_workload_names, check_workload_size,
                                                uses_calico_pools, uses_pools)
from ipam_core.workloads import parse_workload

_BUILTIN_DIR = "scenarios"
_WORKLOAD_KEY = re.compile(r"^(workload(?:\.[A-Za-z0-9_-]+|\[\d+\])*)")


def builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped inside the package (``ipam_core/scenarios/*.yaml``).

    Returns
    -------
    list of str
        Sorted names, e.g. ``["default"]``; each loads with ``load_scenario(name)``.
    """
    folder = resources.files("ipam_core").joinpath(_BUILTIN_DIR)
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_scenario(path_or_text: str | Path) -> Scenario:
    """Load and validate a scenario.

    Parameters
    ----------
    path_or_text : str or pathlib.Path
        A path to a ``.yaml`` file, the name of a built-in scenario (``"default"``, see
        :func:`builtin_scenarios`), or YAML text (any string containing a newline).

    Returns
    -------
    Scenario

    Raises
    ------
    ConfigError
        File missing or unreadable, YAML syntax (``file:line: invalid YAML: ...``), or any
        validation error (``file:line: dotted.key: value ...; expected ...``).

    Notes
    -----
    Relative paths inside the scenario (a replay workload's ``path:``) are resolved
    against the folder of the scenario file.
    """
    if isinstance(path_or_text, Path):
        return _load_file(path_or_text)
    text = str(path_or_text)
    if "\n" in text:
        return _parse_text(text, "<scenario>", None)
    path = Path(text).expanduser()
    if path.is_file():
        return _load_file(path)
    if text in builtin_scenarios():
        with resources.as_file(resources.files("ipam_core").joinpath(_BUILTIN_DIR, f"{text}.yaml")) as builtin:
            return _load_file(Path(builtin))
    if path.suffix in (".yaml", ".yml") or "/" in text:
        raise ConfigError(f"scenario file {text!r} not found; expected a path to a .yaml file")
    raise ConfigError(f"{text!r} is neither a scenario file nor a built-in scenario; expected a path to a "
                      f".yaml file or one of: {', '.join(builtin_scenarios()) or 'none'}")


def _load_file(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read scenario file {str(path)!r}: {exc.__class__.__name__}: "
                          f"{' '.join(str(exc).split())}") from None
    return _parse_text(text, str(path), path.resolve())


def _parse_text(text: str, name: str, path: Path | None) -> Scenario:
    doc, source = load_yaml(text, name)
    return _build(doc, text, path, source)


def parse_scenario(mapping: dict, source_text: str = "", source_path: str | Path | None = None, *,
                   initial_misfit_ok: bool = False) -> Scenario:
    """Validate an already-parsed scenario mapping.

    Parameters
    ----------
    mapping : dict
        The scenario document (what ``yaml.safe_load`` returns).
    source_text : str
        The YAML it came from; when empty, the mapping dumped as YAML (so trace
        metadata always has a text to hash).
    source_path : str or Path, optional
        The file it came from: relative workload paths resolve against its folder,
        and messages start with it.
    initial_misfit_ok : bool
        An ``initialState`` whose node CIDRs do not fit the settings starts no run
        (a what-if carved by the rules) instead of being refused: for sweep points
        that change the pools or masks of a scenario whose own settings fit.

    Returns
    -------
    Scenario

    Raises
    ------
    ConfigError
        One line naming the dotted key, the value and what was expected.
    """
    path = Path(source_path).resolve() if source_path is not None else None
    text = source_text or yaml.safe_dump(mapping, sort_keys=False, default_flow_style=False)
    return _build(mapping, text, path, Source(str(source_path) if source_path is not None else None, {}),
                  initial_misfit_ok)


def scenario_for_mode(scenario: Scenario, mode: str) -> Scenario:
    """A copy of ``scenario`` with ``ipam.mode`` replaced, validated for that mode.

    Parameters
    ----------
    scenario : Scenario
    mode : str
        One of :data:`~ipam_core.scenario.defaults.ALL_MODES`.

    Returns
    -------
    Scenario

    Raises
    ------
    ConfigError
        Unknown mode, or the scenario lacks what the mode needs (see
        :func:`ipam_core.scenario.rules.check_mode`).
    """
    source = Source(str(scenario.source_path) if scenario.source_path else None, {})
    read_mode(Where(("mode",), source), mode)
    ipam = replace(scenario.ipam, mode=mode)
    check_mode(ipam, mode, Where((), source))
    return replace(scenario, ipam=ipam)


def check_scenario_modes(scenario: Scenario, modes) -> None:
    """Check, before anything runs, that ``scenario`` can run under each of ``modes``.

    ``compare --modes`` and ``run --mode`` may name modes the scenario's own ``modes:`` lacks:
    each must get what it needs (:func:`scenario_for_mode`), and with multi-pool among them the
    workload's pools (``podPoolFractions``, a replay file's pools) must be the scenario's.

    Parameters
    ----------
    scenario : Scenario
    modes : sequence of str

    Raises
    ------
    ConfigError
        The first mode the scenario cannot run, or the first unknown pool.
    """
    for mode in modes:
        scenario_for_mode(scenario, mode)
    added = tuple(m for m in modes if m not in scenario.modes and m != scenario.ipam.mode)
    if uses_pools(added) or uses_calico_pools(added):
        source = Source(str(scenario.source_path) if scenario.source_path else None, {})
        where = Where(("workload",), source)
        names = tuple(ns.name for ns in scenario.namespaces) or ("default",)
        _with_line(where, check_workload_names, scenario.workload, scenario.cluster, scenario.duration_s, names,
                   scenario.ipam, tuple(modes))
        _with_line(where, check_replay, scenario.workload, scenario.duration_s, scenario.ipam, tuple(modes),
                   scenario.cluster)


def _build(doc: object, text: str, path: Path | None, source: Source, initial_misfit_ok: bool = False) -> Scenario:
    root = Where((), source)
    if doc is None:
        root.fail("the scenario is empty; expected a mapping with at least 'name'")
    doc = as_mapping(root, doc, null_ok=False)
    check_keys(root, doc, d.TOP_KEYS)
    if "name" not in doc:
        root.fail("missing 'name'; expected a scenario name")
    name = as_str(root / "name", doc["name"], what="a scenario name").strip()
    description = as_str(root / "description", doc.get("description", ""), empty_ok=True, what="free text")
    seed = as_int(root / "seed", doc.get("seed", d.DEFAULT_SEED), lo=0, hi=L.MAX_SEED,
                  what=f"an integer from 0 to 2^63 - 1 ({L.SEED_WHY})")
    duration = as_duration(root / "duration", doc.get("duration", d.DEFAULT_DURATION))
    if duration > L.MAX_DURATION_S:
        days = L.MAX_DURATION_S / 86_400
        (root / "duration").fail(f"{show(doc['duration'])} ({duration:,.0f} s) is too long; expected at most "
                                 f"{days:g} days ({L.MAX_DURATION_S:,.0f} s: {L.MAX_DURATION_WHY})")
    sample = as_duration(root / "sampleInterval", doc.get("sampleInterval", d.DEFAULT_SAMPLE_INTERVAL))
    if sample > duration:
        written = show(doc.get("sampleInterval", d.DEFAULT_SAMPLE_INTERVAL))
        (root / "sampleInterval").fail(f"{written} ({sample:g} s) is longer than the duration ({duration:g} s); "
                                       "expected at most the duration")
    if "nodeSampleInterval" in doc:
        node_sample = as_duration(root / "nodeSampleInterval", doc["nodeSampleInterval"])
        if node_sample > duration:
            (root / "nodeSampleInterval").fail(f"{show(doc['nodeSampleInterval'])} ({node_sample:g} s) is longer "
                                               f"than the duration ({duration:g} s); expected at most the duration")
    else:
        node_sample = min(d.NODE_SAMPLE_FACTOR * sample, duration)
    _check_samples(root, doc, duration, sample)
    modes = _modes(root / "modes", doc.get("modes"))

    cilium = read_cilium(root / "cilium", doc.get("cilium"))
    families = tuple(f for f, on in ((4, cilium.ipv4), (6, cilium.ipv6)) if on)
    cluster, kcm = _cluster(root / "cluster", doc.get("cluster"), families)
    timing = read_timing(root / "timing", doc.get("timing"), cilium.node_update_rate)
    calico_kinds = (*CALICO_KINDS, *CALICO_LIST_KINDS)
    manifest_pools, namespaces = read_manifests(root / "manifests", doc.get("manifests"), calico_kinds)
    calico = read_calico_manifests(root / "manifests", doc.get("manifests"))
    if calico.pools:  # namespaces may name Calico pools only where there are some
        calico = namespace_pools(root / "manifests", calico, namespaces)
    pools, derived = _pools(root, manifest_pools + cilium.auto_pools, cilium)

    cloud = read_cloud(root, doc, cilium.cluster_pool[4] if cilium.ipv4 else (), _kubelet_max_pods(doc),
                       path.parent if path else None)
    ipam = IPAMSpec(
        mode=cilium.mode, ipv4=cilium.ipv4, ipv6=cilium.ipv6, health_ip=cilium.health_ip,
        cluster_pool_v4=cilium.cluster_pool[4], cluster_pool_v4_mask=cilium.cluster_pool_mask[4],
        cluster_pool_v6=cilium.cluster_pool[6], cluster_pool_v6_mask=cilium.cluster_pool_mask[6],
        kcm_cluster_cidrs=kcm.cluster_cidrs, kcm_node_mask_v4=kcm.node_mask_v4, kcm_node_mask_v6=kcm.node_mask_v6,
        kcm_allocate_node_cidrs=kcm.allocate_node_cidrs,
        pools=pools, pre_allocation=cilium.pre_allocation, default_pool=cilium.default_pool, pools_derived=derived,
        cloud=cloud, calico=calico,
    )
    for mode in dict.fromkeys((*modes, ipam.mode)):
        check_mode(ipam, mode, root)

    steps = ()
    if "steps" in doc:
        # Reserved for migrations: kept raw here, validated by the migration module.
        steps = tuple(as_list(root / "steps", doc["steps"]))
    # Reserved for migrations too: node names and step timing, validated by ipam_core.migration.
    migration = as_mapping(root / "migration", doc["migration"]) if "migration" in doc else None
    workload = _workload(root / "workload", doc.get("workload"), path.parent if path else None)
    if node_sample * L.MAX_NODE_SAMPLES < cluster.nodes * duration:
        (root / "nodeSampleInterval").fail(
            f"{node_sample:g} s with {cluster.nodes:,} nodes over {duration:g} s gives "
            f"{cluster.nodes * duration / node_sample:,.0f} node samples; expected at most {L.MAX_NODE_SAMPLES:,} "
            "(~40 B each): a longer nodeSampleInterval or a shorter duration")
    _with_line(root / "workload", check_workload_size, workload, cluster, duration)
    _with_line(root / "workload", check_workload_names, workload, cluster, duration,
               tuple(ns.name for ns in namespaces) or ("default",), ipam, modes)
    _with_line(root / "workload", check_replay, workload, duration, ipam, modes, cluster)
    scenario = Scenario(
        name=name, description=description, seed=seed, duration_s=duration, sample_interval_s=sample,
        node_sample_interval_s=node_sample, modes=modes, cluster=cluster, ipam=ipam, timing=timing,
        namespaces=tuple(namespaces), workload=workload, steps=steps, migration=migration, source_text=text,
        source_path=path,
    )
    if "initialState" in doc:  # the cluster's own node CIDRs and pod addresses, placed in its mode's layout
        initial = read_initial_state(root / "initialState", doc["initialState"], path.parent if path else None,
                                     scenario, misfit_ok=initial_misfit_ok)
        scenario = replace(scenario, initial_state=initial)
    return scenario


def _check_samples(root: Where, doc: dict, duration: float, sample: float) -> None:
    """Refuse a trace of more than :data:`~ipam_core.scenario.limits.MAX_SAMPLES` rows per mode."""
    if sample * L.MAX_SAMPLES < duration:
        written = show(doc.get("sampleInterval", d.DEFAULT_SAMPLE_INTERVAL))
        (root / "sampleInterval").fail(f"{written} over {duration:g} s gives {duration / sample:,.0f} samples; "
                                       f"expected at most {L.MAX_SAMPLES:,} per mode (~250 B each): a longer "
                                       "sampleInterval or a shorter duration")


def _kubelet_max_pods(doc: dict) -> int | None:
    """``cluster.kubelet.maxPods`` when the scenario sets it (already validated by ``_cluster``)."""
    cluster = doc.get("cluster")
    kubelet = cluster.get("kubelet") if isinstance(cluster, dict) else None
    return kubelet.get("maxPods") if isinstance(kubelet, dict) else None


def _modes(where: Where, value: object) -> tuple[str, ...]:
    if value is None:
        return d.DEFAULT_MODES
    items = as_list(where, value, null_ok=False)
    if not items:
        where.fail(f"[] is empty; expected a list of modes from: {', '.join(d.ALL_MODES)}")
    modes = tuple(read_mode(where / i, m) for i, m in enumerate(items))
    for i, mode in enumerate(modes):
        if mode in modes[:i]:
            (where / i).fail(f"{mode!r} is listed twice; expected each mode once")
    return modes


def _cluster(where: Where, value: object, families: tuple[int, ...]):
    cluster = as_mapping(where, value)
    check_keys(where, cluster, d.CLUSTER_KEYS)
    nodes = as_int(where / "nodes", cluster.get("nodes", d.DEFAULT_NODES), lo=1, hi=L.MAX_NODES,
                   what=f"an integer from 1 to {L.MAX_NODES:,} ({L.MAX_NODES_WHY})")
    scheduler = cluster.get("scheduler", d.DEFAULT_SCHEDULER)
    if scheduler not in d.SCHEDULERS:
        (where / "scheduler").fail(f"{show(scheduler)} is not a scheduler; expected one of: {', '.join(d.SCHEDULERS)}")
    address_filter = cluster.get("addressFilter", d.DEFAULT_ADDRESS_FILTER)
    if address_filter not in d.ADDRESS_FILTERS:
        (where / "addressFilter").fail(f"{show(address_filter)} is not an address filter; expected one of: "
                                       f"{', '.join(d.ADDRESS_FILTERS)}")
    kubelet = as_mapping(where / "kubelet", cluster.get("kubelet"))
    check_keys(where / "kubelet", kubelet, d.KUBELET_KEYS)
    max_pods = as_int(where / "kubelet" / "maxPods", kubelet.get("maxPods", d.DEFAULT_MAX_PODS), lo=1,
                      hi=L.MAX_PODS_PER_NODE,
                      what=f"an integer from 1 to {L.MAX_PODS_PER_NODE:,} ({L.MAX_PODS_PER_NODE_WHY})")
    kcm = read_kcm(where / "kubeControllerManager", cluster.get("kubeControllerManager"), families)
    labels = read_node_labels(where / "nodeLabels", cluster.get("nodeLabels"))
    return ClusterSpec(nodes=nodes, scheduler=scheduler, max_pods=max_pods, address_filter=address_filter,
                       node_labels=labels), kcm


def _pools(root: Where, configured: list, cilium) -> tuple[tuple[PoolSpec, ...], bool]:
    """Configured pools (manifests, then Helm auto-create), or the default pool built from the cluster-pool lists."""
    seen: dict[str, Where] = {}
    for w, pool, _ in configured:
        if pool.name in seen:
            w.fail(f"pool {pool.name!r} is defined twice (also at {seen[pool.name]}); expected one definition")
        seen[pool.name] = w
    for family in (4, 6):
        check_disjoint([entry for _, _, nets in configured for entry in nets[family]], "pool CIDRs",
                       "overlapping pool CIDRs are not supported by multi-pool")
    if configured:
        return tuple(pool for _, pool, _ in configured), False
    # No pool configured: mirror Helm autoCreateCiliumPodIPPools with the cluster-pool values.
    v4 = cilium.cluster_pool[4] if cilium.ipv4 else ()
    v6 = cilium.cluster_pool[6] if cilium.ipv6 else ()
    pool = PoolSpec(cilium.default_pool, v4, cilium.cluster_pool_mask[4] if v4 else None,
                    v6, cilium.cluster_pool_mask[6] if v6 else None)
    return (pool,), True


def _workload(where: Where, value: object, base: Path | None):
    raw = _resolve_paths(as_mapping(where, value), base)
    return _with_line(where, parse_workload, raw, "workload")


def _with_line(where: Where, check, *args, **kwargs):
    """Call ``check``; a ``workload.<key>`` error gains the ``file:line:`` of that key."""
    try:
        return check(*args, **kwargs)
    except ConfigError as exc:
        message = str(exc)
        if where.source is None or not where.source.name or message.startswith(where.source.name):
            raise
        key = _WORKLOAD_KEY.match(message)
        path = _key_path(key.group(1)) if key else where.path
        line = where.source.line(path)
        prefix = f"{where.source.name}:{line}: " if line else f"{where.source.name}: "
        raise ConfigError(prefix + message) from None


def _key_path(text: str) -> tuple:
    parts: list[str | int] = []
    for token in re.findall(r"[A-Za-z0-9_-]+|\[\d+\]", text):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return tuple(parts)


def _resolve_paths(value, base: Path | None):
    """Make ``path:`` values under the workload absolute, relative to the scenario folder."""
    if base is None:
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "path" and isinstance(item, str) and item.strip():
                candidate = Path(item).expanduser()
                out[key] = str(candidate if candidate.is_absolute() else base / candidate)
            else:
                out[key] = _resolve_paths(item, base)
        return out
    if isinstance(value, list):
        return [_resolve_paths(item, base) for item in value]
    return value
