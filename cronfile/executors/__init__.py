"""Executors: how each kind of job (shell, command, prompt) becomes a process.

``dispatch.executor_for(spec).prepare(ctx)`` gives a ``base.Prepared`` (what to spawn)
or a ``base.Early`` outcome; ``cronfile.runner.execute`` does the spawning, waiting and
retrying. Each kind is declared once, in ``registry.py``.

This package's ``__init__`` imports nothing, so that ``cronfile.spec`` can read
``registry`` while the executors (which import ``cronfile.spec``) stay unloaded.
"""
