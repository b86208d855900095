"""Training FACT: Adam, stepped learning rate, MSE on the first ``target_len`` output frames, checkpoints with
bit-exact resume, mixed precision and DDP when present, tqdm progress and a CSV (and TensorBoard) log.

Defaults follow mint's ``fact_v5_deeper_t10_cm12`` ``train_config``: batch 32, Adam (Keras defaults: betas 0.9 /
0.999, eps 1e-7), learning rate 1e-4, 1e-5 from step 100k, 1e-6 from step 150k; mint's loss is
``mean((target - pred[:, :20]) ** 2)``.

Run directory::

    RUN/config.json                 model + train config, dataset description, tool version
    RUN/log.csv                     step, epoch, loss, loss_avg, lr, samples_per_s, elapsed_s
    RUN/checkpoints/step_<9-digit step>.pt model, optimizer, grad scaler, step, data position, RNG states, configs
    RUN/checkpoints/latest.txt      name of the newest complete checkpoint (written last, atomically)

Determinism: the data order is a pure function of (seed, epoch) -- epoch ``e`` visits ``randperm(n)`` drawn
from a generator seeded with ``seed + e`` in batches of ``batch_size`` (last partial batch dropped) -- so the data
position is one integer (batches consumed). A resumed run restores model, optimizer, scaler, RNG states and
that position, and then computes exactly what the uninterrupted run would have (same device and thread count).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aistpp.errors import AistppError
from aistpp.io.atomic import atomic_path, atomic_write_text
from aistpp.models.fact import FACTConfig, FACTModel

log = logging.getLogger(__name__)

LOG_COLUMNS = ("step", "epoch", "loss", "loss_avg", "lr", "samples_per_s", "elapsed_s")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters. Defaults = mint ``fact_v5_deeper_t10_cm12`` where it says (batch, optimizer,
    schedule); ``steps`` = 200k (mint's config does not fix it; the schedule ends at 150k)."""

    steps: int = 200_000
    batch_size: int = 32                  # global batch (split over DDP ranks)
    learning_rate: float = 1e-4
    lr_schedule: tuple = ((100_000, 1e-5), (150_000, 1e-6))  # (from step, lr), ascending
    adam_betas: tuple = (0.9, 0.999)
    adam_eps: float = 1e-7                 # Keras Adam default (PyTorch's is 1e-8)
    target_len: int = 20
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3              # newest N kept; 0 keeps all
    log_every: int = 10
    seed: int = 0
    amp: str = "auto"                      # auto (bf16/fp16 on CUDA, off on CPU) | off | bf16 | fp16
    num_workers: int = 0
    tensorboard: bool = True               # if the tensorboard package is installed

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise AistppError("TrainConfig: steps >= 0, batch_size, checkpoint_every, log_every >= 1 required")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise AistppError(f"TrainConfig: amp must be auto, off, bf16 or fp16, got {self.amp!r}")
        object.__setattr__(self, "lr_schedule", tuple((int(s), float(v)) for s, v in self.lr_schedule))
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        if [s for s, _ in self.lr_schedule] != sorted(s for s, _ in self.lr_schedule):
            raise AistppError("TrainConfig: lr_schedule steps must ascend")

    def lr_at(self, step: int) -> float:
        """Learning rate for (0-based) ``step``: the last schedule entry whose step is <= ``step``."""
        lr = self.learning_rate
        for boundary, value in self.lr_schedule:
            if step >= boundary:
                lr = value
        return lr

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["lr_schedule"] = [list(x) for x in self.lr_schedule]
        d["adam_betas"] = list(self.adam_betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**d)


# ----------------------------------------------------------------------------------------------- data order

def epoch_batches(n_items: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches (lists of item indices) of ``epoch``: a seeded permutation cut into full batches."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    perm = torch.randperm(n_items, generator=g).tolist()
    n_batches = n_items // batch_size
    return [perm[i * batch_size:(i + 1) * batch_size] for i in range(n_batches)]


def _split_batch(item) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if isinstance(item, dict):
        try:
            return item["motion"], item["audio"], item["target"]
        except KeyError as err:
            raise AistppError(f"training batch lacks key {err}; expected motion, audio, target") from None
    if isinstance(item, (tuple, list)) and len(item) == 3:
        return tuple(item)
    raise AistppError(f"training batch must be a dict(motion, audio, target) or a 3-tuple, got {type(item)}")


class BatchStream:
    """Endless deterministic stream of collated batches from a map-style dataset (``__len__``/``__getitem__``
    returning dict(motion, audio, target)) or from a re-iterable of ready batches, positioned by the number
    of batches consumed (the resumable data position). With DDP each rank collates its slice of the global
    batch."""

    def __init__(self, dataset, batch_size: int, seed: int, num_workers: int = 0, rank: int = 0, world: int = 1):
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.rank, self.world = rank, world
        self.map_style = hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")
        if self.map_style:
            n = len(dataset)
            if n < batch_size:
                raise AistppError(f"dataset has {n} items, fewer than one batch of {batch_size}")
            if batch_size % world:
                raise AistppError(f"batch size {batch_size} is not divisible by {world} DDP processes")
            self.per_epoch = n // batch_size
        else:
            self.per_epoch = None

    def __call__(self, position: int):
        """Yield (epoch, batch) from data position ``position`` on, forever."""
        if not self.map_style:
            yield from self._iterable(position)
            return
        from torch.utils.data import DataLoader

        epoch, offset = divmod(position, self.per_epoch)
        per_rank = self.batch_size // self.world
        while True:
            if hasattr(self.dataset, "set_epoch"):  # e.g. FACTDataset redraws its random windows per epoch
                self.dataset.set_epoch(epoch)
            batches = epoch_batches(len(self.dataset), self.batch_size, self.seed, epoch)[offset:]
            batches = [b[self.rank * per_rank:(self.rank + 1) * per_rank] for b in batches]
            loader = DataLoader(self.dataset, batch_sampler=batches, num_workers=self.num_workers,
                                persistent_workers=False)
            for batch in loader:
                yield epoch, batch
            epoch, offset = epoch + 1, 0

    def _iterable(self, position: int):
        epoch, seen = 0, 0
        while True:
            got = False
            for batch in self.dataset:
                got = True
                if seen >= position:
                    yield epoch, batch
                seen += 1
            if not got:
                raise AistppError("the training batch iterable is empty")
            epoch += 1


# ------------------------------------------------------------------------------------------- RNG and ckpts

def rng_state() -> dict:
    """RNG states of torch (CPU, CUDA), NumPy and Python as tensors and plain values (loadable with
    ``torch.load(weights_only=True)``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """torch.save through a temporary file and a rename: a killed run never leaves a truncated checkpoint."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run directory (``checkpoints/latest.txt``), or None."""
    ckdir = Path(run_dir) / "checkpoints"
    marker = ckdir / "latest.txt"
    if marker.is_file():
        path = ckdir / marker.read_text().strip()
        if path.is_file():
            return path
    found = sorted(ckdir.glob("step_*.pt"))
    return found[-1] if found else None


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`train` (a run directory picks its latest checkpoint)."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise AistppError("no checkpoint in this run directory", path)
        path = found
    if not path.is_file():
        raise AistppError("checkpoint not found", path)
    try:
        # tensors and plain containers only: no arbitrary unpickling
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - corrupt / foreign file
        raise AistppError(f"cannot read checkpoint: {type(err).__name__}: {err}", path) from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_config" not in ckpt:
        raise AistppError("not an aistpp FACT checkpoint (no model / model_config)", path)
    ckpt["path"] = str(path)
    return ckpt


def model_from_checkpoint(path: str | Path, map_location="cpu") -> tuple[FACTModel, dict]:
    """(FACT model with the checkpoint's weights, in eval mode; the checkpoint dict)."""
    ckpt = load_checkpoint(path, map_location)
    model = FACTModel(FACTConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


# --------------------------------------------------------------------------------------------- the loop

def _amp_dtype(amp: str, device: torch.device):
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _ddp_setup(device):
    """(rank, world, device) -- initialises torch.distributed when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not torch.distributed.is_available():
        return 0, 1, device
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank()
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return rank, dist.get_world_size(), device


def _open_log(run_dir: Path, start_step: int) -> None:
    """Create log.csv, or on resume drop rows past the checkpoint step (they will be recomputed)."""
    path = run_dir / "log.csv"
    rows = []
    if path.is_file() and start_step > 0:
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("step", "").isdigit() and int(r["step"]) <= start_step]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS)
    writer.writeheader()
    writer.writerows({k: r.get(k, "") for k in LOG_COLUMNS} for r in rows)
    atomic_write_text(path, buf.getvalue())


@dataclass
class TrainResult:
    run_dir: str
    step: int
    loss: float
    checkpoint: str | None
    losses: list = field(default_factory=list)   # (step, loss) of each logged step in this call


def train(model: FACTModel, dataset, config: TrainConfig = TrainConfig(), run_dir: str | Path = "run",
          resume: bool = False, device: str | torch.device | None = None, progress: bool | None = None,
          dataset_info: dict | None = None) -> TrainResult:
    """Train ``model`` on ``dataset`` for ``config.steps`` optimizer steps (counted from 0, across resumes).

    Args:
        model: a :class:`FACTModel` (its config is stored in every checkpoint).
        dataset: map-style dataset of dict(motion (120, 225), audio (240, 35), target (20, 225)) float32
            tensors (e.g. :class:`aistpp.data.FACTDataset`), or a re-iterable of such collated batches.
        run_dir: output directory (see the module docstring).
        resume: continue from the newest checkpoint in ``run_dir``; without it a run directory that already
            holds checkpoints is an error (nothing is overwritten).
        device: default CUDA when available, else CPU.
        progress: tqdm bar (default: when stderr is a terminal).
    """
    run_dir = Path(run_dir)
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available()
                                                                           else "cpu")
    rank, world, device = _ddp_setup(device)
    is_main = rank == 0
    existing = latest_checkpoint(run_dir)
    if existing is not None and not resume:
        raise AistppError("run directory already holds checkpoints; pass --resume to continue or choose a new "
                          "--out", run_dir)

    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr_at(0), betas=config.adam_betas, eps=config.adam_eps)
    amp_dtype = _amp_dtype(config.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    step, position = _resume_or_seed(model, optimizer, scaler, config, existing if resume else None)
    if is_main:
        _write_run_config(run_dir, model, config, dataset, dataset_info, world, amp_dtype, device)
        _open_log(run_dir, step)

    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                  else None)
    stream = BatchStream(dataset, config.batch_size, config.seed, config.num_workers, rank, world)
    show = progress if progress is not None else sys.stderr.isatty()
    from aistpp.progress import tqdm

    bar = tqdm(total=config.steps, initial=step, desc="train", unit="step", disable=not (show and is_main),
               dynamic_ncols=True)
    result = TrainResult(str(run_dir), step, float("nan"), str(existing) if existing else None)
    tracker = _LossLog(run_dir, device, bar, result, _tensorboard(run_dir, step, is_main and config.tensorboard))
    model.train()
    batches = stream(position)
    try:
        while step < config.steps:
            epoch, batch = next(batches)
            lr = config.lr_at(step)
            loss, size = _train_step(net, optimizer, scaler, batch, device, amp_dtype, lr)
            step += 1
            position += 1
            tracker.add(loss, size * world)
            at_log = step % config.log_every == 0 or step == config.steps
            if at_log and not torch.isfinite(tracker.loss_acc):  # checked at log steps only: no sync per step
                raise AistppError(f"training diverged: non-finite loss before step {step}", run_dir)
            if is_main and at_log:
                tracker.write(step, epoch, lr)
            result.loss = float(tracker.last) if step == config.steps else result.loss
            if is_main and (step % config.checkpoint_every == 0 or step == config.steps):
                result.checkpoint = str(_checkpoint(run_dir, model, optimizer, scaler, step, position, epoch,
                                                    config))
    finally:
        tracker.close()
    result.step = step
    if math.isnan(result.loss) and result.losses:
        result.loss = result.losses[-1][1]
    return result


def _resume_or_seed(model, optimizer, scaler, config: TrainConfig, checkpoint) -> tuple[int, int]:
    """Load ``checkpoint`` (model, optimizer, scaler, RNG) and return its (step, data position); without one, seed
    every RNG from ``config.seed`` and return (0, 0)."""
    if checkpoint is None:
        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)
        random.seed(config.seed)
        return 0, 0
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    if ckpt["model_config"] != model.config.to_dict():
        raise AistppError("checkpoint model config differs from the model being trained", checkpoint)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    step, position = int(ckpt["step"]), int(ckpt["data_position"])
    set_rng_state(ckpt["rng"])
    log.info("resumed %s at step %d (data position %d)", checkpoint, step, position)
    return step, position


def _write_run_config(run_dir: Path, model, config: TrainConfig, dataset, dataset_info, world: int, amp_dtype,
                      device) -> None:
    """``run_dir/config.json``: tool version, model and train configs, dataset, world size, precision, device."""
    from aistpp import __version__

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", json.dumps({
        "tool_version": __version__, "model_config": model.config.to_dict(), "train_config": config.to_dict(),
        "dataset": dataset_info or {"type": type(dataset).__name__}, "world_size": world,
        "amp": str(amp_dtype) if amp_dtype else "off", "device": str(device)}, indent=2) + "\n")


def _tensorboard(run_dir: Path, step: int, enabled: bool):
    """A TensorBoard SummaryWriter in ``run_dir/tensorboard`` (None when disabled or not installed)."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(run_dir / "tensorboard"), purge_step=step)
    except Exception:  # noqa: BLE001 - tensorboard not installed: the CSV log is enough
        return None


def _train_step(net, optimizer, scaler, batch, device, amp_dtype, lr: float) -> tuple[torch.Tensor, int]:
    """One optimizer step at learning rate ``lr`` on a batch (mixed precision when ``amp_dtype``): the detached
    mean squared error over the target frames and the batch size."""
    motion, audio, target = (t.to(device, non_blocking=True).float() for t in _split_batch(batch))
    for group in optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        pred = net(motion, audio)
    tl = target.shape[1]
    loss = torch.mean((target - pred[:, :tl].float()) ** 2)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), motion.shape[0]


class _LossLog:
    """Losses between two log steps (summed on the device: no sync per step), written as a ``log.csv`` row, to
    TensorBoard, the progress bar and ``result.losses`` at each log step."""

    def __init__(self, run_dir: Path, device, bar, result: TrainResult, tb=None):
        self.run_dir, self.device, self.bar, self.result, self.tb = run_dir, device, bar, result, tb
        self.t0 = time.perf_counter()
        self.last = None
        self._reset(self.t0)

    def _reset(self, now: float) -> None:
        self.loss_acc, self.loss_n, self.t_last, self.n_samples = torch.zeros((), device=self.device), 0, now, 0

    def add(self, loss: torch.Tensor, samples: int) -> None:
        self.last = loss
        self.loss_acc += loss
        self.loss_n += 1
        self.n_samples += samples
        self.bar.update(1)

    def write(self, step: int, epoch: int, lr: float) -> None:
        now = time.perf_counter()
        row = {"step": step, "epoch": epoch, "loss": f"{float(self.last):.6g}",
               "loss_avg": f"{float(self.loss_acc) / self.loss_n:.6g}", "lr": f"{lr:.3g}",
               "samples_per_s": f"{self.n_samples / max(now - self.t_last, 1e-9):.4g}",
               "elapsed_s": f"{now - self.t0:.2f}"}
        with open(self.run_dir / "log.csv", "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=LOG_COLUMNS).writerow(row)
        if self.tb is not None:
            self.tb.add_scalar("loss", float(self.last), step)
            self.tb.add_scalar("lr", lr, step)
        self.bar.set_postfix(loss=f"{float(self.last):.4g}")
        self.result.losses.append((step, float(self.last)))
        self._reset(now)

    def close(self) -> None:
        self.bar.close()
        if self.tb is not None:
            self.tb.close()


def _checkpoint(run_dir: Path, model, optimizer, scaler, step, position, epoch, config) -> Path:
    from aistpp import __version__

    ckdir = run_dir / "checkpoints"
    path = ckdir / f"step_{step:09d}.pt"
    save_checkpoint(path, {
        "format": "aistpp-fact-checkpoint-1", "tool_version": __version__,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "step": step, "data_position": position, "epoch": epoch, "rng": rng_state(),
        "model_config": model.config.to_dict(), "train_config": config.to_dict()})
    atomic_write_text(ckdir / "latest.txt", path.name + "\n")
    if config.keep_checkpoints > 0:
        for old in sorted(ckdir.glob("step_*.pt"))[:-config.keep_checkpoints]:
            old.unlink(missing_ok=True)
    log.info("checkpoint %s", path)
    return path
