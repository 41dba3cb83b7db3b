"""Ray: the optional import, authentication, the connection, and the pool of warm range workers (actors).

Ray is imported only here and only when a farm job runs; without it ``farm`` says how to install it. Security: a
Ray cluster executes whatever its clients send, so its ports must never be open without authentication. This
module turns Ray's token authentication on for every connection it makes (``RAY_AUTH_MODE=token`` unless set),
gives Ray the token file (``FarmSpec.token_file`` -> ``RAY_AUTH_TOKEN_PATH``), and refuses ``RAY_AUTH_MODE=disabled``
unless the machine has no network interface but loopback (a private network namespace, as the tests make).

Workers: one actor per GPU (``num_gpus=gpus_per_worker``, ``num_cpus=0``: the GPU is the resource) or, on a
cluster without GPUs, one per ``cpus_per_worker`` CPUs. Ray restarts an actor whose process dies (on another node
when its node is lost); a restarted actor loads its model again on its first range. The pool is kept while the
Ray connection lasts, so consecutive jobs of one driver reuse warm models.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from ..errors import DependencyError, FarmError
from ..protocol import FarmSpec

RAY_VERSION = "2.60.0"  # what install_deps.py --farm installs and the tests run against
INSTALL_HINT = (f"install Ray into the backend environment: `python3 install_deps.py --farm` "
                f"(or `pip install ray=={RAY_VERSION}`)")
_CLASSES: dict[str, Any] = {}
_POOL: WorkerPool | None = None


def import_ray() -> Any:
    """The ``ray`` module, or ``DependencyError`` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise DependencyError(f"rendering on a farm needs Ray, which is not installed ({exc})",
                              hint=INSTALL_HINT) from None
    return ray


def loopback_only() -> bool:
    """True when every network interface of this machine is a loopback one (a private network namespace)."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return False
    return bool(names) and all(name == "lo" or name.startswith("lo") for name in names)


def configure_auth(spec: FarmSpec) -> None:
    """Make every Ray connection of this process authenticated (see the module docstring)."""
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if mode == "disabled" and not loopback_only():
        raise FarmError("RAY_AUTH_MODE=disabled would let anyone who can reach this machine run code on the farm",
                        hint="unset RAY_AUTH_MODE: t2vz uses Ray's token authentication (docs/farm.md)")
    if not mode:
        os.environ["RAY_AUTH_MODE"] = "token"
    if spec.token_file:
        os.environ["RAY_AUTH_TOKEN_PATH"] = os.path.abspath(os.path.expanduser(spec.token_file))


def connect(ray: Any, spec: FarmSpec) -> bool:
    """Connect to (or start) the Ray cluster; True when this call started the connection (the caller closes it)."""
    if ray.is_initialized():
        return False
    configure_auth(spec)
    try:
        ray.init(address=spec.address or None, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError: say what to check
        where = spec.address or "a new local Ray instance"
        raise FarmError(f"cannot connect to the Ray cluster ({where}): {str(exc).splitlines()[0][:300]}",
                        hint="check --address (ray status on the head node prints it) and the token file "
                             "(--token-file, or RAY_AUTH_TOKEN_PATH)") from None
    return True


def disconnect(ray: Any) -> None:
    global _POOL
    _POOL = None
    ray.shutdown()


def _actor_class(ray: Any) -> Any:
    """The ``RangeWorker`` actor class (defined on first use, so importing this module never imports Ray)."""
    if "worker" in _CLASSES:
        return _CLASSES["worker"]

    class RangeWorker:
        """One warm model on one GPU (or CPU worker); renders ranges and streams their frames."""

        def __init__(self, threads: int) -> None:
            from t2vz_backend.service.farm_range import RangeRenderer

            self._renderer = RangeRenderer(threads)

        def ready(self) -> dict[str, Any]:
            return {"pid": os.getpid(), "host": socket.gethostname(), "node": ray.get_runtime_context().get_node_id()}

        def render(self, job: dict[str, Any], first: int, last: int, write_dir: str, skip: list[int],
                   inputs: Any = None):
            if inputs is not None:
                from t2vz_backend.service.farm_inputs import materialize

                job = materialize(job, inputs)
            for item in self._renderer.render(job, first, last, write_dir, frozenset(skip)):
                if item["kind"] == "start":
                    item["node"] = ray.get_runtime_context().get_node_id()
                yield item

    _CLASSES["worker"] = ray.remote(RangeWorker)
    return _CLASSES["worker"]


@dataclass
class Worker:
    name: str
    actor: Any
    ready: bool = False
    lost: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class WorkerPool:
    """The actors of one Ray connection, with the shape (GPUs/CPUs per worker, count) they were made for."""

    def __init__(self, ray: Any, spec: FarmSpec) -> None:
        self.ray = ray
        self.key = _pool_key(spec)
        count, options = _worker_shape(ray, spec)
        cls = _actor_class(ray)
        self.workers = [Worker(f"w{i}", cls.options(max_restarts=-1, max_task_retries=0, **options)
                               .remote(spec.cpus_per_worker)) for i in range(count)]
        self.describe = f"{count} worker(s), " + (f"{options['num_gpus']:g} GPU each" if options.get("num_gpus")
                                                  else f"{options['num_cpus']} CPU(s) each")

    def usable(self) -> bool:
        return any(not w.lost for w in self.workers)

    def close(self) -> None:
        for worker in self.workers:
            try:
                self.ray.kill(worker.actor)
            except Exception:  # noqa: BLE001 - already gone
                pass


def worker_pool(ray: Any, spec: FarmSpec) -> WorkerPool:
    """The pool for ``spec`` on the current connection: the warm one when its shape matches, else a new one."""
    global _POOL
    if _POOL is not None and _POOL.key == _pool_key(spec) and _POOL.usable():
        return _POOL
    if _POOL is not None:
        _POOL.close()
    _POOL = WorkerPool(ray, spec)
    return _POOL


def drop_pool() -> None:
    """Kill the pool's actors (after a cancelled job, whose actors may still be finishing a step)."""
    global _POOL
    if _POOL is not None:
        _POOL.close()
        _POOL = None


def _pool_key(spec: FarmSpec) -> tuple:
    return (spec.workers, spec.gpus_per_worker, spec.cpus_per_worker)


def _worker_shape(ray: Any, spec: FarmSpec) -> tuple[int, dict[str, Any]]:
    """How many actors, and the resources each reserves."""
    resources = ray.cluster_resources()
    gpus, cpus = float(resources.get("GPU", 0.0)), float(resources.get("CPU", 0.0))
    if spec.gpus_per_worker > 0 and gpus > 0:
        count = spec.workers or max(1, int(gpus // spec.gpus_per_worker))
        return count, {"num_gpus": spec.gpus_per_worker, "num_cpus": 0}
    count = spec.workers or max(1, int(cpus // spec.cpus_per_worker))
    if cpus < spec.cpus_per_worker:
        raise FarmError(f"the Ray cluster has {cpus:g} CPUs and no GPUs: no worker with {spec.cpus_per_worker} "
                        f"CPU(s) fits", hint="add nodes, or lower --cpus-per-worker")
    return count, {"num_cpus": spec.cpus_per_worker}


def is_worker_fault(ray: Any, exc: BaseException) -> bool:
    """True for a lost worker process or node (the range is retried elsewhere), False for anything else."""
    errors = ray.exceptions
    return isinstance(exc, (errors.RayActorError, errors.WorkerCrashedError, errors.NodeDiedError,
                            errors.ObjectLostError))
