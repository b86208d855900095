"""PyTorch datasets over the corpus: one item per sequence (:class:`SequenceDataset`) or FACT training windows
(:class:`FACTDataset`), plus :func:`collate_sequences` for variable-length batches.

FACT window (mint ``mint/utils/inputs_util.py::fact_preprocessing`` with ``configs/fact_v5_deeper_t10_cm12``:
motion input 120, target length 20, target shift 120, audio input 240; all at 60 fps). For a start frame ``s``::

    motion = motion_features[s : s + 120]          (120, 225)   seed motion, 2 s
    audio  = music_features[m(s) : m(s) + 240]     (240, 35)    the same 2 s of music + the next 2 s
    target = motion_features[s + 120 : s + 140]    (20, 225)    the 20 frames after the seed

``m(s)`` is the music frame of motion frame ``s`` by timestamp (``round(t_s * 60)``; for the official data and
our reconstructions timestamps start at 0, so ``m(s) = s`` as in mint). Start frames range over
``0 .. L - W`` with ``W = max(120, 120 + 20, 240) = 240`` (mint's window size) and ``L`` the motion frames that have
music (a shorter music is reported, see :func:`aistpp.audio.align_music`).

Workers: the corpus reader opens HDF5 files lazily per process (pid check) and never pickles handles; the
dataset closes any handle it opened in the parent before returning, so nothing is shared across ``fork``. With
``cache=True`` the small per-sequence motion and music arrays are read once (in the constructor) into memory and
shared copy-on-write by forked workers.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from aistpp.errors import AistppError
from aistpp.naming import parse_name
from aistpp.splits import SPLIT_NAMES  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

# Item keys (flat names) whose leading (or, for 2D, second) axis is the frame axis; collate pads these.
FRAME_AXIS = {"keypoints2d": 1, "det_scores": 1, "timestamps": 0, "keypoints3d": 0, "keypoints3d_optim": 0,
              "views_used": 0, "reprojection_error": 0, "smpl_poses": 0, "smpl_trans": 0,
              "smpl_per_frame_error": 0, "motion": 0, "music": 0, "music_mask": 0}
FIELD_GROUPS = {"smpl": ("smpl/poses", "smpl/trans", "smpl/scaling")}
DEFAULT_SEQUENCE_FIELDS = ("keypoints3d", "smpl", "motion", "music")
SMPL_FIELDS = ("smpl/poses", "smpl/trans", "smpl/scaling")


def _open_corpus(corpus):
    from aistpp.corpus import Corpus

    return corpus if isinstance(corpus, Corpus) else Corpus(corpus)


def _read_names(path: Path) -> list[str]:
    from aistpp.io.annotations import read_name_list

    return [parse_name(n).sequence for n in read_name_list(path)]


def select_sequences(corpus, split=None, genres=None, ignore=True) -> list[str]:
    """Names of the corpus sequences (status ok) in a split, of some genres, without ignored ones.

    Args:
        split: None (all); a name in :data:`SPLIT_NAMES` (rules of :mod:`aistpp.splits` on the sequence name);
            the path of a split file (one name per line, as ``aistpp split --out`` writes); or a list of names.
            Requested names missing from the corpus are logged.
        genres: None, a comma string ``"gBR,gPO"`` or an iterable of genre codes.
        ignore: True drops sequences flagged ``quality.ignore_list`` in the corpus (set by ``import-official``
            and the pipeline from the official ignore list); False keeps them; a path to an ``ignore_list.txt``
            or an iterable of names drops those (and the flagged ones).
    """
    from aistpp import splits

    corpus = _open_corpus(corpus)
    names = splits.select_sequences(corpus.sequences(), split, genres, missing="drop", where="the corpus")
    if ignore is not False and ignore is not None:
        dropped = {n for n in names if (corpus.attrs(n).get("quality") or {}).get("ignore_list")}
        if ignore is not True:
            extra = _read_names(Path(ignore)) if isinstance(ignore, (str, Path)) else [parse_name(n).sequence
                                                                                        for n in ignore]
            dropped |= set(extra)
        names = [n for n in names if n not in dropped]
    return names


def _timestamps(corpus, seq: str, frames: int, fps: int) -> np.ndarray | None:
    """Timestamps (N,) of a sequence if stored for the same frames, else None."""
    grp = corpus.group(seq)
    if "timestamps" in grp and grp["timestamps"].shape[0] == frames:
        return grp["timestamps"][()]
    return None


def _to_tensor(a: np.ndarray, float_dtype=torch.float32) -> torch.Tensor:
    if a.dtype == np.uint16:
        a = a.astype(np.int32)
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.to(float_dtype) if t.is_floating_point() else t


class SequenceDataset(torch.utils.data.Dataset):
    """One item per sequence, variable length; batch with :func:`collate_sequences`.

    Args:
        corpus: a corpus path or :class:`aistpp.corpus.Corpus`.
        split, genres, ignore: see :func:`select_sequences`.
        fields: what each item holds. Corpus fields by name (``keypoints3d``, ``keypoints3d_optim``,
            ``keypoints2d``, ``timestamps``, ``smpl_poses``...), ``"smpl"`` (poses, trans, scaling), ``"motion"``
            (FACT motion vectors (N, 225), or 219 with ``pad=False``) and ``"music"`` ((N, 35) music features
            aligned to the motion frames by timestamp, zero where there is no music, with ``music_mask`` (N,)
            bool). Sequences lacking a requested field are skipped and listed in :attr:`skipped`.
        cache: keep every item's arrays in memory after the first read (per process; the cached tensors are
            returned as they are, so do not modify them in place).

    Items: dict of tensors (float fields as float32) keyed by flat names (``smpl_poses``...) plus ``sequence``,
    ``music_id``, ``genre``, ``frames`` and ``attrs`` (the corpus attributes).
    """

    def __init__(self, corpus, split=None, genres=None, fields=DEFAULT_SEQUENCE_FIELDS, ignore=True,
                 pad: bool = True, cache: bool = False):
        self.corpus = _open_corpus(corpus)
        self.pad = pad
        self.cache = cache
        want: list[str] = []
        for f in ([fields] if isinstance(fields, str) else fields):
            if f in FIELD_GROUPS:
                want += FIELD_GROUPS[f]
            elif f in ("motion", "music"):
                want.append(f)
            else:
                from aistpp.corpus.schema import field_name

                want.append(field_name(f))
        self.fields = tuple(dict.fromkeys(want))
        need = {f for f in self.fields if f not in ("motion", "music")}
        if "motion" in self.fields:
            need |= set(SMPL_FIELDS)
        self._read_fields = tuple(sorted(need))
        self.skipped: dict[str, str] = {}
        self.sequences: list[str] = []
        music_ids = set(self.corpus.music_ids())
        for seq in select_sequences(self.corpus, split, genres, ignore):
            stored = set(self.corpus.fields(seq))
            lacking = sorted(need - stored)
            if lacking:
                self.skipped[seq] = f"no {', '.join(lacking)}"
            elif "music" in self.fields and self.corpus.attrs(seq).get("music") not in music_ids:
                self.skipped[seq] = f"music {self.corpus.attrs(seq).get('music')} not in the corpus"
            else:
                self.sequences.append(seq)
        if self.skipped and not self.sequences:
            seq, why = next(iter(self.skipped.items()))
            raise AistppError(f"SequenceDataset: all {len(self.skipped)} selected sequences lack requested fields "
                              f"(e.g. {seq}: {why}); request fewer fields (fields=...) or add the data "
                              "(music: aistpp add-music)", self.corpus.root)
        if self.skipped:
            log.warning("SequenceDataset: skipped %d sequence(s) lacking requested fields (e.g. %s: %s)",
                        len(self.skipped), *next(iter(self.skipped.items())))
        self._cache: dict[int, dict] = {}
        self._warned: set[str] = set()
        self.corpus.close()

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if self.cache and index in self._cache:
            return dict(self._cache[index])
        seq = self.sequences[index]
        attrs = self.corpus.attrs(seq)
        arrays = self.corpus.read(seq, self._read_fields) if self._read_fields else {}
        item: dict = {}
        for name in self.fields:
            if name in ("motion", "music"):
                continue
            item[name.replace("/", "_")] = _to_tensor(np.asarray(arrays[name]))
        frames = None
        if "smpl/poses" in arrays:
            frames = arrays["smpl/poses"].shape[0]
        if "motion" in self.fields:
            from aistpp.data.motion import encode_motion

            item["motion"] = encode_motion(arrays["smpl/poses"], arrays["smpl/trans"], arrays["smpl/scaling"],
                                           pad=self.pad)
        if "music" in self.fields:
            from aistpp.audio import align_music

            if frames is None:
                frames = self.corpus.frames(seq)
            mid = attrs["music"]
            music = self.corpus.music(mid)
            fps = int(attrs.get("fps", 60))
            al = align_music(seq, mid, frames, music.shape[0], _timestamps(self.corpus, seq, frames, fps), fps,
                             warn=seq not in self._warned)
            self._warned.add(seq)  # report a mismatch once per process, not every epoch
            ok = al.music_index >= 0
            out = np.zeros((frames, music.shape[1]), np.float32)
            out[ok] = music[al.music_index[ok]]
            item["music"] = torch.from_numpy(out)
            item["music_mask"] = torch.from_numpy(ok)
        if frames is None:
            frames = self.corpus.frames(seq)
        item.update(sequence=seq, music_id=attrs.get("music"), genre=attrs.get("genre"), frames=int(frames),
                    attrs=attrs)
        if self.cache:
            self._cache[index] = dict(item)
        return item


def collate_sequences(items: list[dict]) -> dict:
    """Batch variable-length sequence items: frame-indexed tensors (see :data:`FRAME_AXIS`) are zero-padded
    along their frame axis to the longest, others stacked (or listed when shapes differ); strings and dicts are
    listed. Adds ``mask`` (B, T) bool (True on real frames) and ``lengths`` (B,) int64."""
    if not items:
        raise AistppError("collate_sequences: empty batch")
    lengths = torch.as_tensor([int(it["frames"]) for it in items], dtype=torch.int64)
    t_max = int(lengths.max())
    out: dict = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if isinstance(values[0], torch.Tensor) and key in FRAME_AXIS:
            axis = FRAME_AXIS[key]
            shape = list(values[0].shape)
            shape[axis] = t_max
            batch = values[0].new_zeros([len(values)] + shape)
            for b, v in enumerate(values):
                index = [b] + [slice(None)] * v.dim()
                index[1 + axis] = slice(0, v.shape[axis])
                batch[tuple(index)] = v
            out[key] = batch
        elif isinstance(values[0], torch.Tensor):
            same = all(v.shape == values[0].shape for v in values)
            out[key] = torch.stack(values) if same else values
        elif isinstance(values[0], (int, float)) and not isinstance(values[0], bool):
            out[key] = torch.as_tensor(values)
        else:
            out[key] = values
    out["mask"] = torch.arange(t_max)[None, :] < lengths[:, None]
    out["lengths"] = lengths
    return out


SAMPLINGS = ("slots", "mint")


@dataclass(frozen=True)
class FACTWindowConfig:
    """FACT training windows; defaults are mint's ``fact_v5_deeper_t10_cm12`` (60 fps frames).

    ``target_shift`` (default = ``seed_frames``): the target starts this many frames after the window start.
    ``sampling``: ``"slots"`` (default): ``(L - W) // stride + 1`` window slots per sequence and epoch (``stride``
    = their spacing), so a sequence weighs in proportion to its length; with ``random_windows`` each slot's start
    is drawn uniformly from ``0 .. L - W``, otherwise the slot's own grid start is used (deterministic
    evaluation). ``"mint"``: one window per sequence per epoch with a uniform random start (mint's input pipeline
    draws one random crop of each sequence per pass over its tfrecords), every sequence weighing the same;
    ``stride`` and ``random_windows`` play no part.
    """

    seed_frames: int = 120
    audio_frames: int = 240
    target_frames: int = 20
    target_shift: int | None = None
    stride: int = 60
    random_windows: bool = True
    seed: int = 0
    pad: bool = True
    sampling: str = "slots"

    def __post_init__(self):
        for k in ("seed_frames", "audio_frames", "target_frames", "stride"):
            if int(getattr(self, k)) < 1:
                raise AistppError(f"FACTDataset: {k} must be >= 1, got {getattr(self, k)}")
        if self.sampling not in SAMPLINGS:
            raise AistppError(f"FACTDataset: sampling must be one of {', '.join(SAMPLINGS)}, "
                              f"got {self.sampling!r}")

    @property
    def shift(self) -> int:
        return self.seed_frames if self.target_shift is None else int(self.target_shift)

    @property
    def window_frames(self) -> int:
        """W = max(seed, shift + target, audio): frames a window needs from its start (mint's windows_size)."""
        return max(self.seed_frames, self.shift + self.target_frames, self.audio_frames)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["window_frames"] = self.window_frames
        return d


class WindowGrid:
    """Which window each index of an epoch is: slot -> (sequence, start frame), redrawn per epoch.

    ``max_start`` (S,) int64: the last start frame of each sequence (usable frames - window frames). ``"slots"``
    sampling gives sequence ``i`` ``max_start[i] // stride + 1`` slots at ``0, stride, ...`` (the grid starts used
    without ``random_windows``); ``"mint"`` gives each sequence one slot. Random starts are uniform over
    ``0 .. max_start`` with the generator seeded by ``(seed, epoch)``. The epoch lives in shared memory, so
    DataLoader workers (also persistent ones) see :meth:`set_epoch`.
    """

    def __init__(self, max_start, config: FACTWindowConfig):
        self.config = config
        self.max_start = np.asarray(max_start, np.int64)
        if config.sampling == "mint":
            n_slots = np.ones(len(self.max_start), np.int64)
        else:
            n_slots = self.max_start // config.stride + 1
        self.slot_seq = np.repeat(np.arange(len(self.max_start)), n_slots)    # (slots,) sequence index
        self.slot_grid = np.concatenate([np.arange(k) * config.stride for k in n_slots])
        self._epoch_shared = torch.zeros((), dtype=torch.int64).share_memory_()
        self._starts_epoch = None
        self._starts = None

    def __len__(self) -> int:
        return int(self.slot_seq.shape[0])

    @property
    def epoch(self) -> int:
        return int(self._epoch_shared.item())

    def set_epoch(self, epoch: int) -> None:
        self._epoch_shared.fill_(int(epoch))

    def starts(self) -> np.ndarray:
        """(len,) int64 start frame of every slot in the current epoch."""
        epoch = self.epoch
        if self._starts_epoch != epoch:
            if self.config.random_windows or self.config.sampling == "mint":
                rng = np.random.default_rng([self.config.seed, epoch])
                self._starts = rng.integers(0, self.max_start[self.slot_seq] + 1)
            else:
                self._starts = self.slot_grid.copy()
            self._starts_epoch = epoch
        return self._starts


def _encode(arrays: dict, pad: bool) -> np.ndarray:
    from aistpp.data.motion import encode_motion

    return encode_motion(arrays["smpl/poses"], arrays["smpl/trans"], arrays["smpl/scaling"], pad=pad).numpy()


class _CachedWindows:
    """Encoded motion of every sequence in one (sum N, 225) float32 array (+ row offsets), music features of every
    music id in one (sum M, 35) array: one gather per batch, shared copy-on-write by forked workers."""

    def __init__(self, corpus, sequences, music_ids, offsets, pad: bool, progress: bool):
        from aistpp.progress import tqdm

        frames = [int(corpus.group(s)["smpl/poses"].shape[0]) for s in sequences]
        self.motion_rows = np.concatenate([[0], np.cumsum(frames)[:-1]]).astype(np.int64)
        self.motion = np.empty((int(sum(frames)), 225 if pad else 219), np.float32)
        for i, seq in enumerate(tqdm(sequences, desc="cache motion", unit="seq", disable=not progress)):
            r = self.motion_rows[i]
            self.motion[r:r + frames[i]] = _encode(corpus.read(seq, SMPL_FIELDS), pad)
        ids = sorted(set(music_ids))
        music = [np.asarray(corpus.music(m), np.float32) for m in ids]
        rows = dict(zip(ids, np.concatenate([[0], np.cumsum([len(a) for a in music])[:-1]]).astype(np.int64)))
        self.music = np.concatenate(music)
        self.music_rows = np.asarray([rows[m] for m in music_ids], np.int64) + offsets

    def windows(self, seq: np.ndarray, start: np.ndarray, c: FACTWindowConfig, copy: bool):
        """(motion, audio, target) lists for windows (sequence index, start); views unless ``copy``."""
        rows = (self.motion_rows[seq] + start).tolist()
        arows = (self.music_rows[seq] + start).tolist()
        cache_m, cache_a, shift = self.motion, self.music, c.shift
        motion = [cache_m[r:r + c.seed_frames] for r in rows]  # contiguous row ranges: views
        target = [cache_m[r + shift:r + shift + c.target_frames] for r in rows]
        audio = [cache_a[r:r + c.audio_frames] for r in arows]
        if copy:
            motion, target, audio = ([a.copy() for a in x] for x in (motion, target, audio))
        return motion, audio, target


class _HDF5Windows:
    """Windows read from the corpus: only a window's frames are read (h5py datasets opened once per process and
    sequence, never pickled) and encoded in one batch."""

    def __init__(self, corpus, sequences, music_ids, offsets, pad: bool):
        self.corpus, self.sequences, self.music_ids, self.offsets, self.pad = corpus, sequences, music_ids, offsets, pad

    def _datasets(self, i: int):
        """Per-process h5py datasets (poses, trans, scaling, music) of sequence ``i``."""
        import os

        if getattr(self, "_h5_pid", None) != os.getpid():
            self._h5_pid, self._h5_sets = os.getpid(), {}
        d = self._h5_sets.get(i)
        if d is None:
            grp = self.corpus.group(self.sequences[i])
            e = self.corpus.manifest["music"][self.music_ids[i]]
            music = self.corpus._file(e["shard"])["music"][self.music_ids[i]]["features"]
            d = self._h5_sets[i] = (grp["smpl/poses"], grp["smpl/trans"], grp["smpl/scaling"][()], music)
        return d

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_h5_sets", None)
        state.pop("_h5_pid", None)
        return state

    def windows(self, seq: np.ndarray, start: np.ndarray, c: FACTWindowConfig):
        """(motion, audio, target) for windows (sequence index, start): fresh arrays."""
        end = max(c.seed_frames, c.shift + c.target_frames)
        poses, trans, scaling, audio = [], [], [], []
        for i, s in zip(seq.tolist(), start.tolist()):
            p_ds, t_ds, sc, music = self._datasets(i)
            poses.append(p_ds[s:s + end])  # reads only the chunks of these frames
            trans.append(t_ds[s:s + end])
            scaling.append(np.asarray(sc, np.float32).reshape(1))
            m0 = int(self.offsets[i]) + s
            audio.append(np.asarray(music[m0:m0 + c.audio_frames], np.float32))
        m = _encode({"smpl/poses": np.stack(poses), "smpl/trans": np.stack(trans),
                     "smpl/scaling": np.stack(scaling)}, self.pad)  # one batched encode: (B, end, 225)
        return m[:, :c.seed_frames], audio, m[:, c.shift:c.shift + c.target_frames]


def _fact_sequences(corpus, names, window: int, skipped: dict, alignment: dict):
    """The sequences among ``names`` that can give FACT windows: [(sequence, music id, music offset frames,
    usable frames)]; the others go into ``skipped`` (why), music mismatches into ``alignment``."""
    from aistpp.audio import align_music

    music_ids = set(corpus.music_ids())
    out = []
    for seq in names:
        attrs = corpus.attrs(seq)
        mid = attrs.get("music")
        if not set(SMPL_FIELDS) <= set(corpus.fields(seq)):
            skipped[seq] = "no SMPL motion"
            continue
        if mid not in music_ids:
            skipped[seq] = f"music {mid} not in the corpus (aistpp add-music)"
            continue
        frames = int(corpus.group(seq)["smpl/poses"].shape[0])
        fps = int(attrs.get("fps", 60))
        al = align_music(seq, mid, frames, int(corpus.manifest["music"][mid]["frames"]),
                         _timestamps(corpus, seq, frames, fps), fps)
        if not al.ok:
            alignment[seq] = al
        n = al.usable_frames
        if n < window:
            skipped[seq] = f"{n} usable frames < window {window}"
            continue
        out.append((seq, mid, al.offset_frames, n))
    return out


class FACTDataset(torch.utils.data.Dataset):
    """FACT training windows over a corpus split.

    Items: ``motion`` (seed_frames, 225) float32, ``audio`` (audio_frames, 35) float32, ``target``
    (target_frames, 225) float32, ``sequence`` (str) and ``start`` (int, the window's first motion frame); see the
    module docstring for the exact alignment. Deterministic given ``seed`` and the epoch set by
    :meth:`set_epoch` (call it before each epoch to redraw random windows; the same windows come out with any
    ``num_workers``, persistent or not).

    Args:
        corpus: path or :class:`aistpp.corpus.Corpus`; needs SMPL motion and cached music (``aistpp add-music``).
        split, genres, ignore: see :func:`select_sequences` (default split ``crossmodal_train``, ignore list
            applied).
        cache: read every sequence's motion (encoded, float32, (N, 225) ~ 0.9 kB/frame) and music into memory
            in the constructor; otherwise each window reads only its frames from HDF5 and encodes them.
        sampling: ``"slots"`` (windows every ``stride`` frames) or ``"mint"`` (one random window per sequence
            per epoch); see :class:`FACTWindowConfig`.
    Sequences without SMPL, without music or shorter than a window are skipped (logged, :attr:`skipped`);
    music shorter than the motion is reported (:attr:`alignment`) and only frames with music are used.

    Parts: :class:`WindowGrid` (which window each index is, per epoch), ``_CachedWindows`` (in memory) or
    ``_HDF5Windows`` (from the corpus) cut the windows.
    """

    _W = FACTWindowConfig  # the window defaults live there only

    def __init__(self, corpus, split="crossmodal_train", seed_frames: int = _W.seed_frames,
                 audio_frames: int = _W.audio_frames, target_frames: int = _W.target_frames, stride: int = _W.stride,
                 random_windows: bool = _W.random_windows, seed: int = _W.seed, genres=None, ignore=True,
                 cache: bool = True, target_shift: int | None = _W.target_shift, pad: bool = _W.pad,
                 progress: bool = False, sampling: str = _W.sampling):
        self.config = FACTWindowConfig(seed_frames, audio_frames, target_frames, target_shift, stride,
                                       random_windows, seed, pad, sampling)
        self.corpus = _open_corpus(corpus)
        self.cache = bool(cache)
        self.skipped: dict[str, str] = {}
        self.alignment: dict[str, object] = {}
        w = self.config.window_frames
        usable = _fact_sequences(self.corpus, select_sequences(self.corpus, split, genres, ignore), w,
                                 self.skipped, self.alignment)
        if self.skipped:
            log.warning("FACTDataset: skipped %d sequence(s) (e.g. %s: %s)", len(self.skipped),
                        *next(iter(self.skipped.items())))
        if not usable:
            raise AistppError(f"FACTDataset: no sequence of split {split!r} has SMPL motion, music and "
                              f">= {w} frames", self.corpus.root)
        self.sequences = [u[0] for u in usable]
        self.music_ids = [u[1] for u in usable]
        offsets = np.asarray([u[2] for u in usable], np.int64)
        self.grid = WindowGrid(np.asarray([u[3] for u in usable], np.int64) - w, self.config)
        if self.cache:
            self._windows = _CachedWindows(self.corpus, self.sequences, self.music_ids, offsets, pad, progress)
        else:
            self._windows = _HDF5Windows(self.corpus, self.sequences, self.music_ids, offsets, pad)
        self.corpus.close()  # no HDF5 handle survives into forked workers

    # -- windows ------------------------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.grid.epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random windows :meth:`__getitem__` returns (no effect without random_windows).

        The epoch lives in shared memory, so DataLoader workers (also ``persistent_workers=True``) see it; call
        it before iterating the loader for that epoch."""
        self.grid.set_epoch(epoch)

    def starts(self) -> np.ndarray:
        """(len,) int64 start frame of every window of the current epoch."""
        return self.grid.starts()

    def window_index(self) -> list[tuple[str, int]]:
        """[(sequence, start)] of the current epoch, in index order."""
        return [(self.sequences[i], int(s)) for i, s in zip(self.grid.slot_seq, self.starts())]

    def __len__(self) -> int:
        return len(self.grid)

    # -- data ---------------------------------------------------------------------------------------------------
    def _check_index(self, index: int) -> int:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"FACTDataset index {index} out of range ({n})")
        return index

    def __getitem__(self, index: int) -> dict:
        """One window; its tensors are fresh copies."""
        return self._fetch([index], copy=True)[0]

    def __getitems__(self, indices) -> list[dict]:
        """Batched fetch, what ``DataLoader`` calls (torch >= 2.1) before ``collate_fn``.

        With the cache, the windows are views of the cached arrays (no copy: the default collate makes the one
        copy into the batch); a custom ``collate_fn`` must not modify them in place. Use ``dataset[i]`` for a
        window of your own."""
        return self._fetch(indices, copy=False)

    def _fetch(self, indices, copy: bool) -> list[dict]:
        idx = np.asarray([self._check_index(int(k)) for k in indices], np.int64)
        seq = self.grid.slot_seq[idx]
        start = self.starts()[idx]
        if self.cache:
            motion, audio, target = self._windows.windows(seq, start, self.config, copy)
        else:
            motion, audio, target = self._windows.windows(seq, start, self.config)
        names = self.sequences
        from_numpy = torch.from_numpy
        return [{"motion": from_numpy(m), "audio": from_numpy(a), "target": from_numpy(t), "sequence": names[i],
                 "start": s} for m, a, t, i, s in zip(motion, audio, target, seq.tolist(), start.tolist())]
