"""The store of the execution aggregate: every statement on ``agent_executions``, their
``agent_execution_steps`` and ``agent_execution_events``, ``commands`` and ``workers``.

Nothing else in orchestration (nor any other unit) builds a statement on these tables
(tests/test_layering.py checks it): the engine, the run, leases, the service, the figures
of the dashboards and the CLI call these functions. Each status change is guarded by the
lifecycle (``orchestration.lifecycle``): the update names the states the target may be
reached from, and a row in any other state raises ``IllegalTransition``.

Two kinds of function live here, by who calls them:

- synchronous Core functions taking a ``Connection``, for the engine's hot path: they run
  inside ``Database.run_write`` (on a SQLite file, one hand-off to a worker thread for a
  whole batch; decision 0005) and inside the Recorder's group commits;
- ``async`` functions taking an ``AsyncSession``, for requests and commands: they run in
  the caller's transaction and never commit.

Modules: ``executions`` (create, read, list, every status change), ``steps``, ``events``
(numbering, storing, replay), ``leases`` (claims, renewals, hand-backs, workers; the fencing
of decision 0006), ``figures`` (dashboard aggregates and agent metrics).
"""
