"""The event loop and what every mode shares: tables, timers, the scheduler, node-CIDR carving, sampling.

The loop (:mod:`~ipam_core.engine.core`, driven by
:func:`~ipam_core.engine.sampling.sample_run`) knows no mode: it calls the hooks
(:mod:`~ipam_core.engine.hooks`) that each mode's rules register for their State class,
and compiles only the rules of the class it is handed. The modes themselves live in
:mod:`ipam_core.modes` (one module per mode, with the shared rules families beside them)
and import from here; nothing here imports a mode. :mod:`ipam_core.pipeline` puts the
two together (``simulate`` / ``summarize`` / ``write_run``).
"""
