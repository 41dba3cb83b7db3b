"""Staging folders: every run writes into a folder of its own and commits only complete files into the output.

Rules (docs/reliability.md lists the tests that hold them):

1. **Private.** A run stages into ``<output_dir>/.partial-<job tag>-<token>/``, the token unique per run (pid and
   random bytes; ``os.mkdir`` refuses a name that exists). Its owner record ``.owner.json`` names the run: token,
   job id, the frames it claims, host, boot id, pid namespace, pid and the process's start time. A running job
   refreshes the record's mtime (``heartbeat``) at least every ``HEARTBEAT_S``.
2. **Never someone else's.** A run deletes its own staging folder (token checked) and nothing else, except a
   **stale** one: its owner is on this machine (same host, boot and pid namespace) and its process is gone (or the
   pid now belongs to a younger process, or a zombie); or its owner is on another machine and the record has not
   been refreshed for ``STALE_AFTER_S``. A folder without a record (its run died between ``mkdir`` and writing the
   record) counts as stale after ``STALE_AFTER_S`` too. Stale folders are cleared when a run opens its own, and by
   the client when its worker dies, so a rerun after SIGKILL needs no manual cleanup.
3. **Claims.** Opening claims the run's frame range; a live run claiming an overlapping range refuses the new one:
   concurrent runs into one output folder must render disjoint frame ranges (a farm's split).
4. **Commit.** Under the folder lock, ``finalize`` writes the sidecar (and preview) into the staging folder (a
   sidecar that describes the same job is merged, service/sidecar.py), then each file moves into the output folder
   with ``os.replace``: a frame appears whole or not at all. Without ``overwrite`` no existing file is replaced.
5. **The folder lock** (``.t2vz.lock``) is an OS advisory lock (``flock``; ``msvcrt.locking`` on Windows) taken for
   the claim and the commit only, on a file that is removed when released. The OS drops a dead holder's lock, so it
   never goes stale; a holder checks that its locked file is still the one at the path, so removing it is safe.

Standard library only (the client uses ``clear_stale``).
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from ..errors import OutputError
from ..media.atomic import output_error, write_json
from .outputs import LOCK_NAME, STAGING_PREFIX, plain_name, prepare_output_dir, resolve, safe_job_tag

OWNER_NAME = ".owner.json"
LAST_FRAME = 999_999  # frame files have 6-digit names (media/writer.py): a claim without a known end ends here
HEARTBEAT_S = 30.0
STALE_AFTER_S = 3600.0  # a record untouched this long belongs to a dead run (a heartbeat is due every 30 s)
LOCK_TIMEOUT_S = 300.0


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


_HOST = socket.gethostname()
_BOOT = _read("/proc/sys/kernel/random/boot_id")


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except (OSError, AttributeError):
        return ""


def _proc_stat(pid: int) -> list[str]:
    """Fields 3.. of /proc/<pid>/stat (state first), or [] where there is no /proc."""
    text = _read(f"/proc/{pid}/stat")
    return text.rpartition(")")[2].split() if text else []


def _start_time(pid: int) -> str:
    fields = _proc_stat(pid)
    return fields[19] if len(fields) > 19 else ""


@dataclass(frozen=True)
class Owner:
    """Who made a staging folder, and which frames it will write."""

    token: str
    job_id: str
    first: int
    last: int
    host: str
    boot: str
    pidns: str
    pid: int
    started: str  # the process's start time in clock ticks since boot (Linux); "" where unknown
    created: float

    @classmethod
    def mine(cls, token: str, job_id: str, first: int, last: int) -> Owner:
        pid = os.getpid()
        return cls(token, job_id, first, last, _HOST, _BOOT, _pid_namespace(), pid, _start_time(pid), time.time())

    @classmethod
    def from_dict(cls, data: object) -> Owner | None:
        try:
            owner = cls(**data)  # type: ignore[arg-type]
        except TypeError:
            return None
        ints = (owner.first, owner.last, owner.pid)
        return owner if all(isinstance(v, int) and not isinstance(v, bool) for v in ints) else None

    def on_this_machine(self) -> bool:
        return (self.host, self.boot, self.pidns) == (_HOST, _BOOT, _pid_namespace())

    def alive(self) -> bool:
        """False only when this machine can prove the owner's process is gone (see the module docstring)."""
        if not self.on_this_machine():
            return True
        if not _process_alive(self.pid):
            return False
        fields = _proc_stat(self.pid)
        if fields and fields[0] in ("Z", "X"):
            return False  # a zombie: dead, only not yet reaped
        return not (self.started and fields and _start_time(self.pid) != self.started)

    def describe(self) -> str:
        return f"job {self.job_id!r} (pid {self.pid} on {self.host})"


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _windows_process_alive(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return kernel32.GetLastError() == 5  # access denied: it exists
    try:
        code = ctypes.c_ulong()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def read_owner(folder: str) -> Owner | None:
    try:
        with open(os.path.join(folder, OWNER_NAME), encoding="utf-8") as handle:
            return Owner.from_dict(json.load(handle))
    except (OSError, ValueError):
        return None


def staging_runs(root: str) -> list[tuple[str, Owner | None]]:
    """(folder, owner or None) of every staging folder in output folder ``root``."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    folders = [os.path.join(root, n) for n in names if n.startswith(STAGING_PREFIX)]
    return [(folder, read_owner(folder)) for folder in folders if os.path.isdir(folder)]


def is_stale(folder: str, owner: Owner | None, now: float | None = None, dead_hosts: Iterable[str] = ()) -> bool:
    """True when the run that made ``folder`` is provably gone (rule 2 of the module docstring); a record from one
    of ``dead_hosts`` (machines a farm knows are down) is stale at once."""
    if owner is not None and owner.host in set(dead_hosts) and not owner.on_this_machine():
        return True
    if owner is not None and owner.on_this_machine():
        return not owner.alive()
    try:
        touched = os.stat(os.path.join(folder, OWNER_NAME) if owner is not None else folder).st_mtime
    except OSError:
        return owner is None  # record vanished: its run is finishing right now (unless there never was one)
    return (time.time() if now is None else now) - touched > STALE_AFTER_S


def clear_stale(output_dir: str, *, dead_hosts: Iterable[str] = ()) -> list[str]:
    """Remove the stale staging folders of ``output_dir`` (under the folder lock); the folders removed.

    ``dead_hosts``: host names of machines known to be down (a farm's failed nodes), whose runs are stale at once
    instead of an hour after their last heartbeat.
    """
    root = resolve(output_dir)
    if not os.path.isdir(root):
        return []
    with FolderLock(root):
        return _clear_stale_locked(root, dead_hosts)


def _clear_stale_locked(root: str, dead_hosts: Iterable[str] = ()) -> list[str]:
    removed = []
    for folder, owner in staging_runs(root):
        if is_stale(folder, owner, dead_hosts=dead_hosts):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class FolderLock:
    """An exclusive advisory lock on ``<root>/.t2vz.lock``, held for a claim or a commit (rule 5)."""

    def __init__(self, root: str, timeout: float = LOCK_TIMEOUT_S) -> None:
        self.path = os.path.join(root, LOCK_NAME)
        self.timeout = timeout
        self._fd = -1

    def __enter__(self) -> FolderLock:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o666)
            except OSError as exc:
                raise output_error("lock", self.path, exc) from exc
            if _try_lock(fd) and _same_file(fd, self.path):
                self._fd = fd
                return self
            os.close(fd)  # held by another run, or it removed the file after we opened it: try again
            if time.monotonic() > deadline:
                raise OutputError(f"output folder {os.path.dirname(self.path)} has been locked by another t2vz run "
                                  f"for {self.timeout:g} s", field="output_dir",
                                  hint="another run is committing frames there; try again when it has finished")
            time.sleep(0.05)

    def __exit__(self, *_exc: object) -> None:
        fd, self._fd = self._fd, -1
        if os.name != "nt":
            _remove(self.path)  # while still holding it: a waiter that then locks the old file sees it is gone
        _unlock(fd)
        os.close(fd)
        if os.name == "nt":
            _remove(self.path)  # fails while another run has it open, which is fine


def _try_lock(fd: int) -> bool:
    """True when the lock is ours, False when another run holds it. A file system without advisory locks (some
    network or FUSE mounts) counts as ours: there, private staging names and the commit's checks still hold."""
    try:
        if os.name == "nt":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in _NO_LOCKS
    return True


_NO_LOCKS = {code for code in (getattr(errno, name, None) for name in ("ENOLCK", "EOPNOTSUPP", "ENOTSUP", "ENOSYS"))
             if code is not None}


def _unlock(fd: int) -> None:
    try:
        if os.name == "nt":
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        pass


def _same_file(fd: int, path: str) -> bool:
    try:
        mine, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


class StagedOutput:
    """One run's staging folder in ``output_dir``: open (claim), write, then commit or discard.

    ``frames`` is the (first, last) range of global frames the run will write; ``overwrite`` lets the commit replace
    files that exist in the output folder.
    """

    def __init__(self, output_dir: str, job_id: str, *, frames: tuple[int, int] = (0, LAST_FRAME),
                 overwrite: bool = False) -> None:
        self.root = resolve(output_dir)
        self.job_id = job_id
        self.first, self.last = frames
        self.overwrite = overwrite
        self.token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.partial = os.path.join(self.root, f"{STAGING_PREFIX}{safe_job_tag(job_id)}-{self.token}")
        self.created_root = False
        self.committed: list[str] = []
        self._beat = 0.0

    def open(self) -> None:
        """Create the output folder if needed, clear stale staging folders, claim the frames, create ours."""
        self.created_root = not os.path.exists(self.root)
        if prepare_output_dir(self.root) != self.root:
            raise OutputError(f"output folder {self.root} changed while the job started", field="output_dir",
                              hint="do not replace the output folder by a link while a job starts")
        with FolderLock(self.root):
            _clear_stale_locked(self.root)
            for _folder, owner in staging_runs(self.root):
                if owner is not None and owner.first <= self.last and self.first <= owner.last:
                    raise OutputError(
                        f"frames {owner.first}-{owner.last} of {self.root} are being rendered by {owner.describe()}, "
                        f"which overlaps this run's frames {self.first}-{self.last}", field="output_dir",
                        hint="render frame ranges that do not overlap into one folder, or wait for that run to end "
                             "(a run that was killed is cleared automatically once its process is gone)")
            try:
                os.mkdir(self.partial)
            except OSError as exc:
                raise output_error("create staging folder", self.partial, exc) from exc
            write_json(os.path.join(self.partial, OWNER_NAME),
                       asdict(Owner.mine(self.token, self.job_id, self.first, self.last)), indent=None)
        self._beat = time.monotonic()

    def heartbeat(self) -> None:
        """Show other runs that this one is alive (at most every ``HEARTBEAT_S``; failures are harmless)."""
        now = time.monotonic()
        if now - self._beat >= HEARTBEAT_S:
            self._beat = now
            try:
                os.utime(os.path.join(self.partial, OWNER_NAME))
            except OSError:
                pass

    def staged_path(self, name: str) -> str:
        """Where the file ``name`` is written while the job runs."""
        return os.path.join(self.partial, plain_name(name))

    def final_path(self, name: str) -> str:
        """Where the file ``name`` ends up once the job is complete."""
        path = os.path.join(self.root, plain_name(name))
        if resolve(os.path.dirname(path)) != self.root:
            raise OutputError(f"refusing to write {path}: it is outside {self.root}", field="output_dir")
        return path

    def commit(self, finalize: Callable[[], Iterable[str]] | None = None) -> dict[str, str]:
        """Move every staged file into the output folder under the folder lock; returns {staged: final path}.

        ``finalize`` runs first, under the same lock (it writes the sidecar and preview from what the folder holds
        then) and returns the names it may replace even without ``overwrite``.
        """
        moved: dict[str, str] = {}
        with FolderLock(self.root):
            replaceable = set(finalize()) if finalize is not None else set()
            names = [name for name in sorted(os.listdir(self.partial))
                     if not name.startswith(".") and os.path.isfile(os.path.join(self.partial, name))]
            if not self.overwrite:
                clash = next((n for n in names if n not in replaceable and os.path.lexists(self.final_path(n))), "")
                if clash:
                    raise OutputError(f"{clash} appeared in {self.root} while this job ran", field="output_dir",
                                      hint="another job writes into this folder: choose another folder, or set "
                                           "overwrite (CLI: --overwrite) to replace its files")
            for name in names:
                staged, final = os.path.join(self.partial, name), self.final_path(name)
                if os.path.isdir(final):
                    raise OutputError(f"cannot replace folder {final} by a file", hint="move that folder away",
                                      field="output_dir")
                try:
                    os.replace(staged, final)
                except OSError as exc:
                    raise output_error("move", final, exc) from exc
                moved[staged] = final
                self.committed.append(final)
            shutil.rmtree(self.partial, ignore_errors=True)
        return moved

    def discard(self) -> None:
        """Remove our staging folder (only if the record says it is ours), then the output folder if we created it
        and it is empty."""
        owner = read_owner(self.partial)
        if owner is None or owner.token == self.token:  # None: we died before writing it, or it is gone already
            shutil.rmtree(self.partial, ignore_errors=True)
        if self.created_root:
            try:
                os.rmdir(self.root)  # fails (and is left alone) when anything is in it
            except OSError:
                pass
