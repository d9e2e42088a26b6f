"""The cloud rules as the event loop calls them: compiled only for a cloud-mode state.

The pool modes (``kubernetes``, ``cluster-pool``, ``multi-pool``) never run
:mod:`ipam_core.engine.cloud`, yet a call to it anywhere in the loop would
compile it: about 35 s of the loop's 80 s first compile on this 2-core
machine. So a pool-mode state carries its ``cl_iface`` placeholder as
``int32`` (:func:`ipam_core.engine.state.build_state`), which makes it a
different Numba type; for that type each function below compiles to a
constant of the right type, and only a cloud-mode state (``int64``, from
:func:`ipam_core.engine.cloud.init_cloud`) compiles the real call. The loop
checks the mode before every call, so the constants are never used.
"""

from __future__ import annotations

import numpy as np
from numba.core import types
from numba.extending import overload

from ipam_core.engine import cloud


def is_cloud_state(st_type) -> bool:
    """Whether a State's Numba type is a cloud-mode state (its ``cl_iface`` is int64)."""
    return st_type.types[st_type.fields.index("cl_iface")].dtype == types.int64


def _hook(real, placeholder):
    """A function that compiles to ``real`` for a cloud state and to ``placeholder`` otherwise."""
    code = real.py_func.__code__
    params = ", ".join(code.co_varnames[: code.co_argcount])  # overload wants the same parameter names
    namespace = {"real": real, "placeholder": placeholder, "is_cloud_state": is_cloud_state}
    exec(
        f"def stub({params}):\n"
        f"    raise NotImplementedError('called from the compiled loop only')\n"
        f"def call({params}):\n"
        f"    return real({params})\n"
        f"def constant({params}):\n"
        f"    return placeholder\n"
        f"def typed({params}):\n"
        f"    return call if is_cloud_state({code.co_varnames[0]}) else constant\n",
        namespace,
    )
    stub = namespace["stub"]
    stub.__name__ = stub.__qualname__ = real.__name__
    overload(stub)(namespace["typed"])
    return stub


cloud_alloc_pod = _hook(cloud.cloud_alloc_pod, np.int64(-1))
cloud_release_pod = _hook(cloud.cloud_release_pod, None)
cloud_agent_start = _hook(cloud.cloud_agent_start, False)
cloud_agent_changed = _hook(cloud.cloud_agent_changed, -1.0)
cloud_agent_sync = _hook(cloud.cloud_agent_sync, -1.0)
cloud_node_add = _hook(cloud.cloud_node_add, 0.0)
cloud_node_delete = _hook(cloud.cloud_node_delete, None)
cloud_operator = _hook(cloud.cloud_operator, -1.0)
cloud_period = _hook(cloud.cloud_period, 0.0)
cloud_quiet_until = _hook(cloud.cloud_quiet_until, 0.0)
