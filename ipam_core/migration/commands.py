"""Read a step's ``run:`` command line (kubectl, helm, cilium, kubeadm) into an action.

Commands are split as a POSIX shell would (``shlex``), so the lines of a runbook can be pasted
verbatim: quotes, ``\\`` line continuations, ``# comments`` and a leading prompt (``$``,
``❯``) are handled, and anything after a ``|`` (``| grep podCIDRs -A2``) is ignored. One
command per step: ``&&`` and ``;`` are refused.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from ipam_core.errors import ConfigError
from ipam_core.migration.actions import (AGENT_SELECTORS, KUBE_SYSTEM, Action, AddNodes, Apply, Cordon,
                                         DeleteCiliumNodes, DeleteDeployments, DeleteNodes, DeletePods, Drain,
                                         HelmUpgrade, Observe, RestartAgents, RolloutRestart, Scale, Uncordon)
from ipam_core.migration.helm import classify_key, parse_set
from ipam_core.migration.objects import read_objects
from ipam_core.scenario._where import Where

_PROMPTS = ("$", "❯", "#", ">")
#: ``kubeadm join`` flags that take a value, and bare ones: the command's own and kubeadm's global
#: flags (kubernetes.io/docs/reference/setup-tools/kubeadm/generated/kubeadm_join/).
KUBEADM_JOIN_VALUE_FLAGS = ("--node-name", "--token", "--discovery-token", "--discovery-token-ca-cert-hash",
                            "--discovery-file", "--tls-bootstrap-token", "--config", "--cri-socket",
                            "--certificate-key", "--apiserver-advertise-address", "--apiserver-bind-port",
                            "--ignore-preflight-errors", "--patches", "--skip-phases", "-v", "--v", "--log-file",
                            "--log-file-max-size", "--rootfs")
KUBEADM_JOIN_BARE_FLAGS = ("--control-plane", "--discovery-token-unsafe-skip-ca-verification", "--dry-run",
                           "--skip-headers", "--skip-log-headers", "--add-dir-header", "--one-output", "-h", "--help")
_DEPLOY = ("deploy", "deployment", "deployments", "deployment.apps", "deployments.apps")
_DS = ("ds", "daemonset", "daemonsets", "daemonset.apps", "daemonsets.apps")
_CN = ("ciliumnode", "ciliumnodes", "cn", "ciliumnode.cilium.io", "ciliumnodes.cilium.io")
_POD = ("pod", "pods", "po")
_NODE = ("node", "nodes", "no")
_OBSERVE_VERBS = ("get", "describe", "exec", "logs", "wait", "top", "port-forward", "events")
#: ``kubectl get`` resource -> what the timeline shows.
_OBSERVED = {**{k: "ciliumnodes" for k in _CN},
             **{k: "ciliumendpoints" for k in ("ciliumendpoints", "ciliumendpoint", "cep", "ciliumendpoints.cilium.io")},
             **{k: "pods" for k in _POD}, **{k: "nodes" for k in _NODE}}
SUPPORTED = ("helm upgrade", "kubectl rollout restart", "kubectl delete ciliumnode|pod|deployment|node",
             "kubectl apply -f", "kubectl drain|cordon|uncordon", "kubectl scale", "kubectl get", "kubeadm join",
             "cilium ...")


def split_command(text: str) -> list[str]:
    """Split a command line into words, dropping a prompt, comments and any ``| filter``.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of str

    Raises
    ------
    ConfigError
        Unbalanced quotes, or ``&&`` / ``;`` chaining two commands.
    """
    lexer = shlex.shlex(text.replace("\\\n", " "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError as exc:
        raise ConfigError(f"{text!r}: {exc}; expected a command line with balanced quotes") from None
    while words and words[0] in _PROMPTS:
        words = words[1:]
    for i, word in enumerate(words):
        if word in ("|", "|&"):
            return words[:i]
        if word in ("&&", "||", ";", "&", ";;"):
            raise ConfigError(f"{text!r} chains commands with {word!r}; expected one command per step")
    return words


class _Args:
    """Flags and positional words of a command, read left to right."""

    def __init__(self, words: list[str], where: Where, text: str):
        self.words, self.where, self.text = words, where, text
        self.flags: dict[str, list[str]] = {}
        self.positional: list[str] = []

    def fail(self, message: str):
        """Raise a one-line error naming the command."""
        self.where.fail(f"{self.text!r}: {message}")

    def parse(self, with_value: tuple[str, ...], bare: tuple[str, ...], *, strict: bool = True) -> _Args:
        """Sort the words into flags (with or without a value) and positional words."""
        i = 0
        words = self.words
        while i < len(words):
            word = words[i]
            if word.startswith("-") and word != "-":
                name, eq, value = word.partition("=")
                if not word.startswith("--") and len(word) > 2 and word[:2] in with_value:
                    name, eq, value = word[:2], "=", word[2:]  # -owide, -nkube-system
                if name in with_value:
                    if not eq:
                        if i + 1 >= len(words):
                            self.fail(f"flag {name} needs a value")
                        value = words[i + 1]
                        i += 1
                    self.flags.setdefault(name, []).append(value)
                elif name in bare:
                    self.flags.setdefault(name, []).append(value if eq else "true")
                elif strict:
                    self.fail(f"unknown flag {name!r}; expected one of: {', '.join(with_value + bare)}")
            else:
                self.positional.append(word)
            i += 1
        return self

    def one(self, *names: str, default: str | None = None) -> str | None:
        """The last value given to any of ``names``."""
        for name in names:
            if name in self.flags:
                return self.flags[name][-1]
        return default

    def has(self, *names: str) -> bool:
        """Whether any of ``names`` is set (and not ``=false``)."""
        return any(self.flags.get(n, ["false"])[-1] != "false" for n in names)


def parse_command(text: str, where: Where, *, stdin: str | None = None,
                  read_file: Callable[[str], str] | None = None) -> Action:
    """Read one command line into an action.

    Parameters
    ----------
    text : str
        E.g. ``kubectl -n kube-system rollout restart ds/cilium``.
    where : Where
        Position of the step's ``run`` key (one-line errors name it).
    stdin : str, optional
        The step's ``stdin:`` (the manifest of ``kubectl apply -f -``).
    read_file : callable, optional
        Reads ``kubectl apply -f FILE`` relative to the scenario (absent: files are refused).

    Returns
    -------
    Action

    Raises
    ------
    ConfigError
        One line: the command, what is wrong, and what was expected.
    """
    try:
        words = split_command(text)
    except ConfigError as exc:
        where.fail(str(exc))
    if not words:
        where.fail(f"{text!r} is empty; expected a command such as: {', '.join(SUPPORTED)}")
    tool, rest = words[0], words[1:]
    if tool == "helm":
        return _helm(rest, where, text)
    if tool in ("kubectl", "k", "oc"):
        return _kubectl(rest, where, text, stdin, read_file)
    if tool in ("cilium", "cilium-dbg", "hubble"):
        what = "config" if rest[:2] == ["config", "view"] else "other"
        return Observe(what, tuple(words))
    if tool == "kubeadm" and rest[:1] == ["join"]:
        args = _Args(rest[1:], where, text).parse(KUBEADM_JOIN_VALUE_FLAGS, KUBEADM_JOIN_BARE_FLAGS)
        if args.has("--dry-run"):  # kubeadm join --dry-run changes nothing
            return Observe("other", tuple(words))
        name = args.one("--node-name")
        if not name:
            where.fail(f"{text!r}: kubeadm join needs --node-name NAME here; expected the new node's name")
        return AddNodes((name,))
    where.fail(f"{text!r}: unsupported command {tool!r}; expected one of: {', '.join(SUPPORTED)}")


def _helm(rest: list[str], where: Where, text: str) -> Action:
    if not rest or rest[0] != "upgrade":
        where.fail(f"{text!r}: only 'helm upgrade' changes a running release; expected helm upgrade RELEASE CHART ...")
    args = _Args(rest[1:], where, text).parse(
        ("--set", "--set-string", "--version", "--namespace", "-n", "--timeout", "-f", "--values", "--kube-context"),
        ("--reuse-values", "--reset-values", "--reset-then-reuse-values", "--install", "-i", "--wait", "--atomic",
         "--devel", "--debug", "--dry-run", "--force", "--wait-for-jobs", "--cleanup-on-fail"))
    if args.flags.get("-f") or args.flags.get("--values"):
        args.fail("values files are not read; expected --set k=v, or the structured form "
                  "'helm: {upgrade: {values: {...}}}'")
    if args.has("--dry-run"):
        return Observe("other", ("helm", *rest))
    assignments: list[tuple[str, object]] = []
    # Helm applies --set before --set-string; within a flag, command-line order.
    for flag, as_string in (("--set", False), ("--set-string", True)):
        for value in args.flags.get(flag, []):
            try:
                pairs = parse_set(value, as_string=as_string)
                for key, _ in pairs:
                    classify_key(key)
            except ConfigError as exc:
                args.fail(str(exc))
            assignments.extend(pairs)
    reuse = args.has("--reuse-values", "--reset-then-reuse-values") and not args.has("--reset-values")
    return HelmUpgrade(tuple(assignments), None, reuse)


def _kubectl(rest: list[str], where: Where, text: str, stdin: str | None, read_file) -> Action:
    global_flags = ("-n", "--namespace", "--context", "--kubeconfig", "-o", "--output", "-l", "--selector",
                    "--field-selector", "--replicas", "-f", "--filename", "--grace-period", "--timeout", "-c",
                    "--container", "--sort-by")
    bare = ("-A", "--all-namespaces", "--all", "--ignore-daemonsets", "--delete-emptydir-data",
            "--delete-local-data", "--force", "--ignore-not-found", "--now", "--wait", "-w", "--watch", "-it", "-i",
            "-t", "--show-labels", "--disable-eviction", "--no-headers")
    if "--" in rest:  # kubectl exec POD -- cmd ...: only the part before "--" has flags
        rest = rest[: rest.index("--")]
    lenient = _Args(rest, where, text).parse(global_flags, bare, strict=False)
    if lenient.positional and lenient.positional[0] in _OBSERVE_VERBS:
        words = lenient.positional[1:]
        what = _OBSERVED.get(words[0].split("/")[0].lower(), "other") if words and words[0] != "-" else "other"
        return Observe(what if lenient.positional[0] == "get" else "other", ("kubectl", *rest))
    args = _Args(rest, where, text).parse(global_flags, bare)
    if not args.positional:
        args.fail("no kubectl verb; expected e.g. 'kubectl delete ciliumnode NAME'")
    verb, words = args.positional[0], args.positional[1:]
    ns = args.one("-n", "--namespace", default="default")
    if verb == "rollout":
        if words[:1] != ["restart"]:
            args.fail("only 'rollout restart' is simulated; expected kubectl rollout restart deploy/NAME")
        return _rollout(args, words[1:], ns)
    if verb == "delete":
        return _delete(args, words, ns)
    if verb in ("apply", "create", "replace"):
        source = args.one("-f", "--filename")
        if source is None:
            args.fail("needs -f; expected kubectl apply -f - (with stdin:) or -f FILE")
        if source == "-":
            if stdin is None:
                args.fail("reads stdin but the step has no 'stdin:'; expected the manifest under stdin:")
            content = stdin
        elif read_file is None:
            args.fail("-f FILE is not read here; expected -f - with the manifest under stdin:")
        else:
            content = read_file(source)
        at = Where(where.path[:-1] + ("stdin",), where.source) if source == "-" else where
        return Apply(tuple(read_objects(at, content)))
    if verb in ("drain", "cordon", "uncordon"):
        if not words:
            args.fail(f"{verb} needs a node name")
        nodes = tuple(w.split("/", 1)[-1] for w in words)
        if verb == "drain":
            return Drain(nodes, force=args.has("--force"))
        return Cordon(nodes) if verb == "cordon" else Uncordon(nodes)
    if verb == "scale":
        replicas = args.one("--replicas")
        if replicas is None or not replicas.isdigit():
            args.fail("needs --replicas=N; expected kubectl scale deploy/NAME --replicas=3")
        targets = _targets(args, words)
        if len(targets) != 1 or targets[0][0] not in _DEPLOY:
            args.fail("scales one Deployment; expected kubectl scale deploy/NAME --replicas=N")
        return Scale(ns, targets[0][1], int(replicas))
    args.fail(f"unsupported kubectl verb {verb!r}; expected one of: rollout restart, delete, apply, drain, cordon, "
              "uncordon, scale, get")


def _targets(args: _Args, words: list[str]) -> list[tuple[str, str]]:
    """``TYPE/NAME ...`` or ``TYPE NAME ...`` into (type, name) pairs."""
    if not words:
        return []
    if "/" in words[0]:
        out = []
        for word in words:
            if "/" not in word:
                args.fail(f"{word!r} mixes TYPE/NAME and TYPE NAME forms; expected TYPE/NAME for every target")
            kind, name = word.split("/", 1)
            out.append((kind.lower(), name))
        return out
    return [(words[0].lower(), name) for name in words[1:]] or [(words[0].lower(), "")]


def _rollout(args: _Args, words: list[str], ns: str) -> Action:
    deployments, daemonsets = [], []
    for kind, name in _targets(args, words):
        if not name:
            args.fail(f"{kind} needs a name; expected kubectl rollout restart {kind}/NAME")
        if kind in _DEPLOY:
            deployments.append(name)
        elif kind in _DS:
            daemonsets.append(name)
        else:
            args.fail(f"cannot restart a {kind!r}; expected deploy/NAME or ds/NAME (only Deployments and the Cilium "
                      "DaemonSet are simulated)")
    if not deployments and not daemonsets:
        args.fail("nothing to restart; expected kubectl rollout restart deploy/NAME")
    return RolloutRestart(ns, tuple(deployments), tuple(daemonsets))


def _selector(args: _Args) -> dict[str, str] | None:
    raw = args.one("-l", "--selector")
    if raw is None:
        return None
    out = {}
    for item in filter(None, raw.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key.endswith("!"):
            args.fail(f"selector {raw!r}: only key=value terms are simulated; expected e.g. -l app=webpod")
        out[key.strip()] = value.strip().lstrip("=")
    return out


def _node_field(args: _Args) -> str | None:
    raw = args.one("--field-selector")
    if raw is None:
        return None
    key, eq, value = raw.partition("=")
    if key.strip() != "spec.nodeName" or not eq:
        args.fail(f"field selector {raw!r}: only spec.nodeName=NODE is simulated")
    return value.strip().lstrip("=")


def _delete(args: _Args, words: list[str], ns: str) -> Action:
    ignore = args.has("--ignore-not-found")
    targets = _targets(args, words)
    if not targets:
        args.fail("delete needs a resource; expected e.g. kubectl delete ciliumnode NAME")
    kinds = {k for k, _ in targets}
    if len(kinds) != 1:
        args.fail("deletes one kind of object per step; expected e.g. kubectl delete ciliumnode A B")
    kind = kinds.pop()
    names = tuple(n for _, n in targets if n)
    if kind in _CN:
        if args.has("--all"):
            return DeleteCiliumNodes((), True, ignore)
        if not names:
            args.fail("which CiliumNode? expected kubectl delete ciliumnode NAME (or --all)")
        return DeleteCiliumNodes(names, False, ignore)
    if kind in _POD:
        selector, node = _selector(args), _node_field(args)
        if selector is not None and ns == KUBE_SYSTEM and selector in AGENT_SELECTORS:
            return RestartAgents(None if node is None else (node,))
        if not names and selector is None and node is None:
            args.fail("which pod? expected kubectl delete pod NAME, or -l key=value")
        return DeletePods(ns, names, selector, node, ignore)
    if kind in _DEPLOY:
        if not names:
            args.fail("which Deployment? expected kubectl delete deployment NAME")
        return DeleteDeployments(ns, names, ignore)
    if kind in _NODE:
        if not names:
            args.fail("which node? expected kubectl delete node NAME")
        return DeleteNodes(names)
    args.fail(f"cannot delete a {kind!r} here; expected ciliumnode, pod, deployment or node")


__all__ = ["SUPPORTED", "parse_command", "split_command"]
