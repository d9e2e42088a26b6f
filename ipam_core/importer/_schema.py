"""Typed Kubernetes objects through the official client's models, with one-line errors.

The ``kubernetes`` package (the ``import`` extra) is loaded on first use, so ``ipam-bench``
starts without it; a missing or too old package is one line naming the extra.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from pydantic import ValidationError

from ipam_core.errors import ConfigError

#: What to install when the Kubernetes models are missing.
EXTRA_HINT = "pip install 'ipam-bench[import]'"


@dataclass(frozen=True)
class Origin:
    """Where an object came from: the file and its place in it, for error messages."""

    path: str
    index: int
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind} {self.name!r}"


def kube_models():
    """The ``kubernetes.client`` module (pydantic models, kubernetes >= 37).

    Returns
    -------
    module

    Raises
    ------
    ConfigError
        The package is not installed, or is a version whose models are not pydantic models.
    """
    try:
        client = importlib.import_module("kubernetes.client")
    except ImportError:
        raise ConfigError(f"ipam-bench import needs the Kubernetes object models: the 'kubernetes' package is not "
                          f"installed; expected the 'import' extra ({EXTRA_HINT})") from None
    if not hasattr(client.V1Pod, "model_validate"):
        raise ConfigError(f"ipam-bench import needs kubernetes >= 37 (pydantic models); found an older 'kubernetes' "
                          f"package; expected the 'import' extra ({EXTRA_HINT})")
    return client


def dotted(loc) -> str:
    """A pydantic error location as ``spec.podCIDRs[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(object)"


def lookup(raw, loc):
    """The value at ``loc`` in the raw mapping, or ``None``."""
    value = raw
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def validate(model, raw: dict, origin: Origin, field_prefix: str = ""):
    """``model.model_validate(raw)``, tolerating fields newer than the client's schema.

    Parameters
    ----------
    model : type
        A pydantic model class (a ``kubernetes.client`` model, or one of :mod:`.crds`).
    raw : dict
        The object as dumped.
    origin : Origin
        For the error message.
    field_prefix : str
        Where ``raw`` sits in its object (``"spec.podSelector."``), for the message.

    Returns
    -------
    object
        The typed object.

    Raises
    ------
    ConfigError
        ``FILE: Kind 'name': field.path: value ...; expected ...`` for the first field of a
        wrong type or a missing required field. A field the schema does not know (a newer
        API server's) is not an error: the client's own ``from_dict`` then drops it.
    """
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        real = [e for e in exc.errors() if e["type"] != "extra_forbidden"]
        if not real:
            return model.from_dict(raw)
        first = real[0]
        field = field_prefix + dotted(first["loc"])
        value = lookup(raw, first["loc"])
        shown = "missing" if first["type"] == "missing" else repr(value)
        msg = first["msg"]
        for prefix in ("Input should be ", "Value should be "):
            msg = msg[len(prefix):] if msg.startswith(prefix) else msg
        expected = "the field (it is required)" if first["type"] == "missing" else msg[:1].lower() + msg[1:]
        raise ConfigError(f"{origin}: {field}: {shown}; expected {expected} ({model.__name__} schema)") from None
