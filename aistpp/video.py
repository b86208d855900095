"""Streaming, frame-accurate, synchronized decoding of the 9 views of an AIST++ sequence.

Every view is put on one 60 fps grid: output frame ``i`` of every view is the decoded frame whose presentation
timestamp (PTS) is nearest ``t_i = round(i * 1e6 / 60)`` us (the official ``timestamps``). A view recorded at
59.94 fps, or with a dropped frame, is therefore re-aligned by its timestamps rather than by its frame index
(reading "the i-th decoded frame" drifts by one frame every ~16.7 s at 59.94 fps, and shifts every later frame
after a drop). Targets farther than ``VideoConfig.tolerance`` frame periods from every decoded frame are *holes*
(``valid`` False); a decoded frame used for two consecutive targets is a *duplicate*. Both are reported per view.

Memory stays bounded: a view is decoded once, front to back, and frames come out in batches of
``VideoConfig.batch_size`` (one 1080p RGB frame is ~6 MB; 9 views x 8 frames ~ 450 MB).

A missing view, a file that cannot be opened or decoded, a file that ends early, or a video of another resolution
is reported in that view's :class:`ViewStatus` (and logged) and the other views go on; an unusable view yields
``None`` frames (detection leaves NaN keypoints there).

Timestamps: PTS are taken relative to the stream's declared ``start_time`` (so an edit-list offset does not shift
the grid). Decoding uses PyAV (FFmpeg); OpenCV is not needed here.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from aistpp.errors import AistppError
from aistpp.io.annotations import FPS, frame_timestamps
from aistpp.naming import VIEWS, parse_name

log = logging.getLogger(__name__)

# View states, worst last. "ok" and "realigned" views are fully usable; "truncated" views are usable up to their end.
OK, REALIGNED, TRUNCATED, MISSING, CORRUPT, RESOLUTION = "ok", "realigned", "truncated", "missing", "corrupt", \
    "resolution"
USABLE_STATES = (OK, REALIGNED, TRUNCATED)


@dataclass(frozen=True)
class VideoConfig:
    """How views are read and aligned.

    fps: the output grid (AIST++: 60). tolerance: a target with no decoded frame within ``tolerance`` frame periods
    is a hole (0.6 leaves 59.94 fps videos hole-free while a dropped frame, 1 period away, is a hole).
    batch_size: frames per yielded batch. expected_size: (width, height) every view must have (AIST++: 1920x1080);
    None accepts any. on_resolution: what to do with a view of another size: "skip" it (reported, NaN downstream) or
    "resize" its frames to ``expected_size`` (keypoints then live in the expected pixel grid). frame_tolerance:
    how many frames a view may differ from the expected count before it is reported (the official conversion had an
    off-by-one frame bug, so 1 by default).
    """

    fps: float = FPS
    tolerance: float = 0.6
    batch_size: int = 8
    expected_size: tuple[int, int] | None = (1920, 1080)
    on_resolution: str = "skip"
    frame_tolerance: int = 1
    threads: int = 0  # FFmpeg decoder threads; 0 = FFmpeg's choice

    def __post_init__(self):
        if self.on_resolution not in ("skip", "resize"):
            raise AistppError(f"on_resolution must be 'skip' or 'resize', got {self.on_resolution!r}")
        if self.batch_size < 1 or self.fps <= 0 or self.tolerance <= 0:
            raise AistppError("VideoConfig needs batch_size >= 1, fps > 0 and tolerance > 0")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ViewStatus:
    """What happened to one view. ``state`` is one of ok, realigned, truncated, missing, corrupt, resolution.

    n_source: decoded frames (from the container index before decoding; updated after decoding);
    n_expected: frames on the 60 fps grid; holes / duplicates: grid indices (see module docstring);
    unused: decoded frames no grid index picked; size: (width, height) of the file; fps: its average frame rate.
    """

    view: str
    path: str
    state: str = OK
    message: str = ""
    size: tuple[int, int] | None = None
    fps: float | None = None
    n_source: int = 0
    n_expected: int = 0
    holes: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    unused: int = 0

    @property
    def usable(self) -> bool:
        return self.state in USABLE_STATES

    def to_dict(self) -> dict:
        d = asdict(self)
        d["usable"] = self.usable
        return d

    def summary(self) -> str:
        s = f"{self.view}: {self.state}"
        if self.message:
            s += f" ({self.message})"
        if self.usable:
            s += f"; {self.n_source} decoded frames for {self.n_expected} grid frames"
            if self.holes:
                s += f", {len(self.holes)} holes (first {self.holes[:5]})"
            if self.duplicates:
                s += f", {len(self.duplicates)} duplicates (first {self.duplicates[:5]})"
        return s


@dataclass(frozen=True)
class Alignment:
    """Nearest-timestamp alignment of one view onto the grid.

    source_index (N,) int64: index into the sorted source PTS of the frame used for grid frame i;
    offset_us (N,) int64: source PTS - grid time; valid (N,) bool: |offset| within tolerance.
    """

    source_index: np.ndarray
    offset_us: np.ndarray
    valid: np.ndarray

    @property
    def holes(self) -> np.ndarray:
        return np.flatnonzero(~self.valid)

    @property
    def duplicates(self) -> np.ndarray:
        """Grid indices i > 0 (valid) that reuse the source frame of grid index i - 1."""
        same = np.zeros(len(self.valid), bool)
        same[1:] = self.source_index[1:] == self.source_index[:-1]
        return np.flatnonzero(same & self.valid)


def align_to_grid(source_pts_us, n_frames: int, fps: float = FPS, tolerance: float = 0.6) -> Alignment:
    """Align frames with presentation times ``source_pts_us`` (M,) us to the grid ``round(i * 1e6 / fps)``, i < N.

    Each grid frame takes the nearest source frame (ties -> the earlier); farther than ``tolerance`` periods is
    invalid. Source times need not be sorted; ``source_index`` refers to the *sorted* order.
    """
    pts = np.sort(np.asarray(source_pts_us, np.int64))
    grid = frame_timestamps(n_frames, fps)
    if len(pts) == 0:
        return Alignment(np.full(n_frames, -1, np.int64), np.zeros(n_frames, np.int64), np.zeros(n_frames, bool))
    right = np.clip(np.searchsorted(pts, grid, side="left"), 0, len(pts) - 1)
    left = np.clip(right - 1, 0, len(pts) - 1)
    take_left = np.abs(pts[left] - grid) <= np.abs(pts[right] - grid)
    idx = np.where(take_left, left, right).astype(np.int64)
    offset = pts[idx] - grid
    valid = np.abs(offset) <= tolerance * 1e6 / fps
    return Alignment(idx, offset, valid)


def view_paths(videos_dir: str | Path, sequence: str) -> dict[str, Path]:
    """{view: path of ``<video>.mp4``} for the 9 views of ``sequence`` (paths may not exist)."""
    seq = parse_name(sequence)
    return {v: Path(videos_dir) / f"{seq.with_view(v)}.mp4" for v in VIEWS}


def _open(path: Path, threads: int = 0):
    import av

    container = av.open(str(path))
    if not container.streams.video:
        container.close()
        raise AistppError("no video stream", path)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    if threads:
        stream.codec_context.thread_count = threads
    return container, stream


def _pts_us(pts, stream) -> int:
    start = stream.start_time or 0
    return int(round((pts - start) * stream.time_base * 1_000_000))


def probe_view(path: str | Path, view: str = "", n_expected: int | None = None,
               config: VideoConfig = VideoConfig()) -> tuple[ViewStatus, np.ndarray]:
    """Open a view, read its packet timestamps (no decoding) and check it.

    Returns the status and the sorted source PTS (M,) int64 us. ``n_expected`` None: taken from the view itself
    (frames its duration covers at ``config.fps``). Never raises for a bad file; the status says what is wrong.
    """
    path = Path(path)
    st = ViewStatus(view=view or path.stem, path=str(path))
    empty = np.zeros(0, np.int64)
    if not path.exists():
        st.state, st.message = MISSING, "file not found"
        return st, empty
    try:
        container, stream = _open(path, config.threads)
    except Exception as err:  # av.error.* (InvalidDataError...), AistppError
        st.state, st.message = CORRUPT, f"cannot open: {' '.join(str(err).split())}"
        return st, empty
    try:
        st.size = (int(stream.codec_context.width), int(stream.codec_context.height))
        st.fps = float(stream.average_rate) if stream.average_rate else None
        pts = [_pts_us(p.pts, stream) for p in container.demux(stream) if p.pts is not None and p.size > 0]
    except Exception as err:
        st.state, st.message = CORRUPT, f"cannot read packets: {' '.join(str(err).split())}"
        return st, empty
    finally:
        container.close()
    pts = np.unique(np.asarray(pts, np.int64))
    st.n_source = len(pts)
    if len(pts) == 0:
        st.state, st.message = CORRUPT, "no frames"
        return st, pts
    st.n_expected = int(n_expected) if n_expected is not None else int(round(pts[-1] * config.fps / 1e6)) + 1
    if config.expected_size is not None and st.size != tuple(config.expected_size):
        st.message = f"size {st.size[0]}x{st.size[1]}, expected {config.expected_size[0]}x{config.expected_size[1]}"
        if config.on_resolution == "skip":
            st.state = RESOLUTION
            return st, pts
    _apply_alignment(st, align_to_grid(pts, st.n_expected, config.fps, config.tolerance), config)
    return st, pts


def _apply_alignment(st: ViewStatus, al: Alignment, config: VideoConfig) -> None:
    st.holes = al.holes.tolist()
    st.duplicates = al.duplicates.tolist()
    st.unused = int(st.n_source - len(np.unique(al.source_index[al.valid])))
    n_valid = int(al.valid.sum())
    if len(al.valid) and not al.valid[-1] and n_valid and \
            len(al.valid) - (np.flatnonzero(al.valid)[-1] + 1) > config.frame_tolerance:
        missing_end = len(al.valid) - (np.flatnonzero(al.valid)[-1] + 1)
        st.state = TRUNCATED
        st.message = "; ".join(filter(None, [st.message, f"ends {missing_end} frames early"]))
    elif n_valid == 0:
        st.state = CORRUPT
        st.message = "; ".join(filter(None, [st.message, "no frame near the grid"]))
    elif st.holes or st.duplicates or abs(st.n_source - st.n_expected) > config.frame_tolerance:
        st.state = REALIGNED
        extra = f"{st.n_source} frames for {st.n_expected} expected" \
            if abs(st.n_source - st.n_expected) > config.frame_tolerance else ""
        st.message = "; ".join(filter(None, [st.message, extra]))


def iter_view(path: str | Path, view: str = "", n_frames: int | None = None,
              config: VideoConfig = VideoConfig(), status: ViewStatus | None = None,
              source_pts: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Stream one view on the grid: yields ``(start, frames (B, H, W, 3) uint8 RGB, valid (B,) bool)``.

    ``start`` is the grid index of the first frame of the batch; batches cover 0..N-1 in order. Holes carry the
    nearest frame (or zeros) with ``valid`` False. For an unusable view nothing is yielded. Decoding errors
    mid-file end the view early: the remaining grid frames become holes and the status says "truncated".
    Pass ``status``/``source_pts`` from :func:`probe_view` to skip probing again; ``status`` is updated in place.
    """
    path = Path(path)
    if status is None or source_pts is None:
        status, source_pts = probe_view(path, view, n_frames, config)
    if not status.usable:
        return
    n = status.n_expected
    al = align_to_grid(source_pts, n, config.fps, config.tolerance)
    want: dict[int, list[int]] = {}  # source pts -> grid indices that use it
    for i, (j, ok) in enumerate(zip(al.source_index, al.valid)):
        if ok:
            want.setdefault(int(source_pts[j]), []).append(i)
    resize = config.expected_size is not None and status.size != tuple(config.expected_size)
    if config.expected_size is not None:
        width, height = config.expected_size
    else:
        width, height = status.size
    batch = np.zeros((min(config.batch_size, n), height, width, 3), np.uint8)
    valid = np.zeros(len(batch), bool)
    next_i = 0  # next grid index to emit
    last = None  # last decoded frame, used to fill holes

    def fill_until(stop: int, image):
        """Emit grid indices next_i..stop-1 as holes (carrying ``image``)."""
        nonlocal next_i
        while next_i < stop:
            k = next_i % config.batch_size
            batch[k] = 0 if image is None else image  # np.empty batches: every slot is written
            valid[k] = False
            next_i += 1
            if next_i % config.batch_size == 0 or next_i == n:
                yield

    def put(i: int, image):
        nonlocal next_i
        k = i % config.batch_size
        batch[k] = image
        valid[k] = True
        next_i = i + 1

    def flush():
        nonlocal batch, valid
        b = (next_i - 1) % config.batch_size + 1
        out = (next_i - b, batch[:b], valid[:b])
        batch, valid = np.empty_like(batch), np.zeros_like(valid)  # the consumer owns the yielded arrays
        return out

    decoded = 0
    try:
        container, stream = _open(path, config.threads)
    except Exception as err:
        status.state, status.message = CORRUPT, f"cannot open: {' '.join(str(err).split())}"
        log.warning("%s", status.summary())
        return
    try:
        frames = container.decode(stream)
        while next_i < n:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except Exception as err:  # corrupt data mid-stream
                status.message = "; ".join(filter(None, [status.message,
                                                         f"decoding stopped: {' '.join(str(err).split())}"]))
                break
            decoded += 1
            if frame.pts is None:
                continue
            targets = want.get(_pts_us(frame.pts, stream))
            if not targets:
                continue
            image = frame.to_ndarray(format="rgb24")
            if resize:
                import cv2

                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            for i in targets:
                for _ in fill_until(i, last):  # holes before i
                    yield flush()
                put(i, image)
                if next_i % config.batch_size == 0 or next_i == n:
                    yield flush()
            last = image
    finally:
        container.close()
    if next_i < n:
        status.holes = sorted(set(status.holes) | set(range(next_i, n)))
        missing_end = n - next_i
        if missing_end > config.frame_tolerance:
            status.state = TRUNCATED
            status.message = "; ".join(filter(None, [status.message, f"decoded frames end {missing_end} "
                                                                     f"grid frames early"]))
        for _ in fill_until(n, last):
            yield flush()
    log.debug("%s: decoded %d frames", path, decoded)


@dataclass
class SequenceBatch:
    """One batch of grid frames of all views.

    start: grid index of the first frame; timestamps (B,) int64 us; frames: {view: (B, H, W, 3) uint8 RGB or None
    for an unusable view}; valid (V, B) bool in ``views`` order.
    """

    start: int
    timestamps: np.ndarray
    frames: dict[str, np.ndarray | None]
    valid: np.ndarray
    views: tuple[str, ...]


class SequenceReader:
    """The 9 views of a sequence on one 60 fps grid, decoded as a stream of :class:`SequenceBatch`.

    ``n_frames``: the expected frame count (e.g. from the official keypoints2d pkl). None: the longest usable view.
    Opening probes every view (packet timestamps only); :attr:`status` holds one :class:`ViewStatus` per view.
    """

    def __init__(self, videos_dir: str | Path, sequence: str, n_frames: int | None = None,
                 config: VideoConfig = VideoConfig(), views: tuple[str, ...] = VIEWS):
        self.sequence = parse_name(sequence).sequence
        self.config = config
        self.views = tuple(views)
        self.paths = {v: p for v, p in view_paths(videos_dir, sequence).items() if v in self.views}
        probes = {v: probe_view(self.paths[v], v, n_frames, config) for v in self.views}
        if n_frames is None:
            counts = [st.n_expected for st, _ in probes.values() if st.n_expected]
            if not counts:
                raise AistppError(f"no readable view of {self.sequence}", videos_dir)
            n_frames = max(counts)
            probes = {v: (probe_view(self.paths[v], v, n_frames, config) if st.n_expected != n_frames
                          else (st, pts)) for v, (st, pts) in probes.items()}
        self.n_frames = int(n_frames)
        self.status: dict[str, ViewStatus] = {v: st for v, (st, _) in probes.items()}
        self._pts = {v: pts for v, (_, pts) in probes.items()}
        for st in self.status.values():
            (log.info if st.state == OK else log.warning)("%s %s", self.sequence, st.summary())

    @property
    def timestamps(self) -> np.ndarray:
        """(N,) int64 us of the grid."""
        return frame_timestamps(self.n_frames, self.config.fps)

    def view_iter(self, view: str) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Stream one view (see :func:`iter_view`); nothing for an unusable view."""
        return iter_view(self.paths[view], view, self.n_frames, self.config, self.status[view], self._pts[view])

    def __iter__(self) -> Iterator[SequenceBatch]:
        its = {v: self.view_iter(v) for v in self.views}
        ts = self.timestamps
        bs = self.config.batch_size
        for start in range(0, self.n_frames, bs):
            b = min(bs, self.n_frames - start)
            frames: dict[str, np.ndarray | None] = {}
            valid = np.zeros((len(self.views), b), bool)
            for k, v in enumerate(self.views):
                got = next(its[v], None)
                if got is None:
                    frames[v] = None
                    continue
                s, fr, ok = got
                assert s == start and len(fr) == b, (s, start, len(fr), b)
                frames[v], valid[k] = fr, ok
            yield SequenceBatch(start, ts[start:start + b], frames, valid, self.views)


def write_video(path: str | Path, frames, fps: float = FPS, pts=None, time_base=None, preset: str = "ultrafast",
                crf: int = 10, container_options: dict | None = None) -> int:
    """Encode RGB frames (an iterable of (H, W, 3) uint8) to an H.264 ``path`` (atomically); returns the count.

    Frames are cropped to even sizes (yuv420p). ``pts``: presentation timestamps in ``time_base`` ticks (default
    frame k at tick k with ``time_base`` 1/fps), so a test or a demo can write a 59.94 fps view or one with a
    dropped frame. ``preset`` "medium" uses B-frames
    (decode order differs from presentation order); ``container_options`` go to the muxer (e.g. ``{"movflags":
    "faststart"}``).
    """
    from fractions import Fraction

    try:
        import av
    except ImportError:
        raise AistppError("writing video needs PyAV: pip install 'aistpp[video]'", path) from None

    from aistpp.io.atomic import atomic_path

    rate = Fraction(fps).limit_denominator(1001)
    time_base = 1 / rate if time_base is None else time_base
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise AistppError("no frames to write", path)
    ticks = iter(pts) if pts is not None else iter(range(1 << 62))
    count = 0
    with atomic_path(path, suffix=Path(path).suffix or ".mp4") as tmp:
        with av.open(str(tmp), "w", options=container_options or {}) as container:
            stream = container.add_stream("libx264", rate=rate)
            h, w = first.shape[0] - first.shape[0] % 2, first.shape[1] - first.shape[1] % 2
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.codec_context.time_base = time_base
            stream.options = {"preset": preset, "crf": str(crf)}
            for image in itertools.chain([first], frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w], np.uint8), format="rgb24")
                frame.pts, frame.time_base = int(next(ticks)), time_base
                container.mux(stream.encode(frame))
                count += 1
            container.mux(stream.encode())
    return count
