"""The backend connection the add-on keeps between jobs (no bpy).

The worker process stays up after a job so the next one reuses the loaded model; a change of interpreter,
environment or mode starts a new one. ``stop()`` ends it (Free VRAM, unregister). In-process mode runs jobs in a
thread of Blender's own Python, which then needs torch importable (developers and the tests use it).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from .environment import BACKEND_DIR, BackendEnv
from .errors import T2VZAddonError

SUBPROCESS, IN_PROCESS = "SUBPROCESS", "IN_PROCESS"
PING_TIMEOUT_S = 180.0  # the first ping waits for torch to import in the worker


@dataclass(frozen=True)
class ClientConfig:
    mode: str = SUBPROCESS
    backend: BackendEnv | None = None  # required for SUBPROCESS
    extra_env: tuple[tuple[str, str], ...] = ()  # HF_HOME, HF_HUB_OFFLINE, ...


_client: Any = None
_config: ClientConfig | None = None


def get_client(config: ClientConfig) -> Any:
    """A started client for ``config``, reusing the running one when nothing changed and it is alive."""
    global _client, _config
    if _client is not None and _config == config and getattr(_client, "alive", True):
        return _client
    stop()
    client = _make_client(config)
    _client, _config = client, config
    return client


def _make_client(config: ClientConfig) -> Any:
    from ..backend.t2vz_backend.service import client as client_module  # stdlib only, but not needed until a job starts

    if config.mode == IN_PROCESS:
        if importlib.util.find_spec("torch") is None:  # looked up, not imported: the job thread imports it
            raise T2VZAddonError("in-process mode needs torch in Blender's own Python, which does not have it",
                                 "switch the backend mode to 'Separate Process' in the add-on preferences")
        return client_module.InProcessRunner()
    if config.backend is None:
        raise T2VZAddonError("no backend environment is configured", "set one in the add-on preferences")
    env = config.backend.worker_env(dict(config.extra_env))
    client = client_module.WorkerClient(config.backend.python, env=env, pythonpath=[str(BACKEND_DIR)])
    try:
        client.start()
    except client_module.BackendError as exc:
        raise T2VZAddonError(exc.message, exc.hint or "check the backend Python in the add-on preferences") from exc
    return client


def stop() -> None:
    """End the worker (frees its memory) or drop the in-process runner."""
    global _client, _config
    client, _client, _config = _client, None, None
    if client is not None:
        stop_client = getattr(client, "stop", None)
        if stop_client is not None:
            stop_client()


def pong_text(pong: Any) -> str:
    """One line describing the backend that answered a ping: version, Python, torch, device."""
    return f"t2vz {pong.version} | Python {pong.python} | torch {pong.torch} | {pong.device}"
