"""Executors run one function over many tasks and yield its results as they finish.

They know nothing of the pipeline: the caller passes ``work(task) -> result`` (a picklable module-level function,
:func:`aistpp.pipeline.run_sequence`) and ``failed(task, reason) -> result`` (what a task whose worker died, or whose
result could not be returned, yields instead, :func:`aistpp.pipeline.failed_result`).

* ``local``: a process pool (``workers`` processes, spawned so no parent state or file handle leaks into a worker;
  1 worker = run in this process). Each worker limits torch to its share of the cores. A worker that dies (out of
  memory, a crash in native code) fails only its own sequence: the tasks in flight are re-run one at a time to
  find it, then the pool resumes for the rest.
* ``ray``: the same function as a Ray task (``num_cpus=1`` each, retried once if its worker dies), on a cluster at
  ``ray_address`` or a local Ray started with ``workers`` CPUs.

An executor is a callable ``run(tasks) -> iterator of results`` (completion order), from :func:`get_executor`.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Iterable, Iterator

from aistpp.errors import AistppError

log = logging.getLogger(__name__)


def _init_worker(threads: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass


Work = Callable[[object], object]
Failed = Callable[[object, str], object]


def run_local(tasks: Iterable, workers: int = 1, *, work: Work, failed: Failed) -> Iterator:
    """Run ``work`` over tasks in a pool of ``workers`` processes (1 = in this process); yield results as they
    complete.

    At most ``workers`` tasks are in flight. If a worker process dies, the tasks that were in flight are re-run one
    at a time in a fresh single-worker pool, so the one that kills its worker is identified and fails alone (with
    that reason); the pool then resumes for the rest.
    """
    tasks = list(tasks)
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield work(t)
        return
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, (os.cpu_count() or 1) // workers)

    def new_pool(n):
        return ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                   initargs=(threads,))

    def outcome(fut, task):
        try:
            return fut.result()
        except BrokenProcessPool:
            raise
        except Exception as err:  # noqa: BLE001 - e.g. a result that cannot be unpickled
            return failed(task, f"{type(err).__name__}: {' '.join(str(err).split())}")

    queue = deque(tasks)
    suspects: deque = deque()
    while queue or suspects:
        if suspects:  # isolate the tasks that were running when a worker died
            task = suspects.popleft()
            pool = new_pool(1)
            try:
                try:
                    res = outcome(pool.submit(work, task), task)
                except BrokenProcessPool:
                    res = failed(task, "worker process died (out of memory or a native crash)")
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
            yield res
            continue
        pool = new_pool(min(workers, len(queue)))
        inflight: dict = {}
        broken = False
        try:
            while (queue or inflight) and not broken:
                while queue and len(inflight) < workers:
                    t = queue.popleft()
                    inflight[pool.submit(work, t)] = t
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    task = inflight.pop(fut)
                    try:
                        res = outcome(fut, task)
                    except BrokenProcessPool:
                        broken = True
                        suspects.append(task)
                        continue
                    yield res
            if broken:
                suspects.extend(inflight.values())
                inflight.clear()
                log.warning("a worker process died; re-running %d sequence(s) one at a time", len(suspects))
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)


def run_ray(tasks: Iterable, workers: int | None = None, address: str | None = None, *, work: Work,
            failed: Failed) -> Iterator:
    """Run ``work`` over tasks as Ray tasks; yield results as they complete. Starts (and stops) a local Ray with ``workers``
    CPUs when none is running and no ``address`` is given; otherwise connects to ``address``."""
    try:
        import ray
    except ImportError:
        raise AistppError("--executor ray needs Ray: pip install 'aistpp[ray]' (plain ray, not ray[default])") from None

    tasks = list(tasks)
    started = False
    if not ray.is_initialized():
        kwargs = {"address": address} if address else {"num_cpus": workers or os.cpu_count() or 1,
                                                       "include_dashboard": False}
        ray.init(ignore_reinit_error=True, log_to_driver=False, logging_level=logging.WARNING, **kwargs)
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=1)(_ray_task)
        refs = {remote.remote(work, t): t for t in tasks}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                task = refs.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as err:  # noqa: BLE001 - ray wraps worker deaths and task errors
                    yield failed(task, f"ray: {type(err).__name__}: {' '.join(str(err).split())[:300]}")
    finally:
        if started:
            ray.shutdown()


def _ray_task(work, task):
    _init_worker(1)
    return work(task)


def get_executor(name: str, work: Work, failed: Failed, workers: int = 1,
                 ray_address: str | None = None) -> Callable[[Iterable], Iterator]:
    """``local`` or ``ray`` -> a callable ``run(tasks)`` yielding ``work(task)`` (or ``failed(task, reason)``) in
    completion order."""
    if name == "local":
        return lambda tasks: run_local(tasks, workers, work=work, failed=failed)
    if name == "ray":
        return lambda tasks: run_ray(tasks, workers, ray_address, work=work, failed=failed)
    raise AistppError(f"unknown executor {name!r}; expected local or ray")
