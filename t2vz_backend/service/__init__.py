"""The job service: ``run_job`` (every driver's one entry), the worker process, its client, in-process mode,
the output-folder rules and the sidecar. ``client``, ``event_stream``, ``in_process`` and ``outputs`` import no
torch: the add-on uses them.
"""
