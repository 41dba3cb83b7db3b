"""t2vz backend: Text2Video-Zero video generation and editing on diffusers, importable without Blender.

Entry points: ``python -m t2vz_backend`` (CLI, worker), :func:`t2vz_backend.service.jobs.run_job` (one job, any driver),
and the request/event types in :mod:`t2vz_backend.protocol`. torch is imported only by the engine modules.
"""

__version__ = "0.1.0"
