"""Official and custom splits of AIST++ sequences, and leakage checks.

Crossmodal (FACT) splits follow rules on the sequence name, applied in ``mapping.txt`` order:

* test: basic dance (sBM), choreography ch02, paired music in :data:`CROSSMODAL_MUSIC`;
* val: the same musics, choreography ch01 (sBM);
* train: neither those musics nor sBM ch01/ch02.

With the ignore list kept, these regenerate the published ``crossmodal_train.txt`` / ``crossmodal_test.txt``
line for line. Pose splits hold out dancers whose number is divisible by 3 for test.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from aistpp.errors import AistppError
from aistpp.naming import GENRES, SequenceName, check_genre, parse_genres, parse_name

log = logging.getLogger(__name__)

CROSSMODAL_MUSIC = frozenset({"mBR0", "mPO1", "mLO2", "mMH3", "mLH4", "mHO5", "mWA0", "mKR2", "mJS3", "mJB5"})
KINDS = ("crossmodal", "pose", "genre")
SUBSETS = ("train", "val", "test")
# Split names that select_sequences computes by rule (the pose split has no val).
SPLIT_NAMES = ("crossmodal_train", "crossmodal_val", "crossmodal_test", "pose_train", "pose_test")


def crossmodal_subset(name: SequenceName) -> str | None:
    """'train', 'val', 'test' or None (a sequence FACT uses in no subset)."""
    if name.music in CROSSMODAL_MUSIC:
        if name.situation == "sBM" and name.choreography == "ch02":
            return "test"
        if name.situation == "sBM" and name.choreography == "ch01":
            return "val"
        return None
    if name.situation == "sBM" and name.choreography in ("ch01", "ch02"):
        return None
    return "train"


def pose_subset(name: SequenceName) -> str:
    """Pose-estimation split: 'test' for dancers whose number is divisible by 3, else 'train'."""
    return "test" if name.dancer_number % 3 == 0 else "train"


@dataclass(frozen=True)
class SplitSpec:
    """What to select. ``kind``: crossmodal | pose | genre (hold out ``holdout_genres`` for test)."""

    kind: str = "crossmodal"
    genres: tuple[str, ...] | None = None
    holdout_genres: tuple[str, ...] = ()
    keep_ignored: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise AistppError(f"unknown split kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        for g in (self.genres or ()) + tuple(self.holdout_genres):
            check_genre(g)
        if self.kind == "genre" and not self.holdout_genres:
            raise AistppError("a genre split needs --holdout-genre")


def subset_of(name: SequenceName, spec: SplitSpec) -> str | None:
    if spec.kind == "crossmodal":
        return crossmodal_subset(name)
    if spec.kind == "pose":
        return pose_subset(name)
    return "test" if name.genre in spec.holdout_genres else "train"


def make_splits(sequences: Iterable[str], spec: SplitSpec = SplitSpec(),
                ignore: Iterable[str] = ()) -> dict[str, list[str]]:
    """Assign ``sequences`` (in their given order, e.g. mapping.txt order) to train/val/test.

    Sequences in ``ignore`` are dropped unless ``spec.keep_ignored``; ``spec.genres`` keeps only those genres.
    The ``"all"`` entry lists every sequence kept by those two filters, whether the kind puts it in a subset or not
    (a crossmodal split leaves some sequences out of train, val and test).
    """
    ignored = set() if spec.keep_ignored else {parse_name(s).sequence for s in ignore}
    out: dict[str, list[str]] = {s: [] for s in SUBSETS + ("all",)}
    for seq in sequences:
        name = parse_name(seq)
        if name.sequence in ignored:
            continue
        if spec.genres is not None and name.genre not in spec.genres:
            continue
        out["all"].append(name.sequence)
        subset = subset_of(name, spec)
        if subset is not None:
            out[subset].append(name.sequence)
    return out


@dataclass
class LeakageReport:
    """Which dancers, musics and choreographies appear in both train and test."""

    dancers: list[str] = field(default_factory=list)
    musics: list[str] = field(default_factory=list)
    choreographies: list[str] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.dancers or self.musics or self.choreographies or self.sequences)

    def lines(self) -> list[str]:
        if self.clean:
            return ["no leakage: no sequence, dancer, music or choreography is in both train and test"]
        out = []
        for label, items in (("sequences", self.sequences), ("dancers", self.dancers), ("musics", self.musics),
                             ("choreographies", self.choreographies)):
            if items:
                out.append(f"{label} in both train and test ({len(items)}): {', '.join(items)}")
        return out


def check_leakage(train: Sequence[str], test: Sequence[str]) -> LeakageReport:
    """Report overlap between train and test. A choreography is identified by (genre, situation, dancer, ch),
    the same dance routine performed to any music."""
    tr = [parse_name(s) for s in train]
    te = [parse_name(s) for s in test]

    def both(key):
        return sorted({key(n) for n in tr} & {key(n) for n in te})

    return LeakageReport(
        dancers=both(lambda n: n.dancer),
        musics=both(lambda n: n.music),
        choreographies=both(lambda n: f"{n.genre}_{n.situation}_{n.dancer}_{n.choreography}"),
        sequences=both(lambda n: n.sequence),
    )


def genre_counts(sequences: Iterable[str]) -> dict[str, int]:
    counts = {g: 0 for g in GENRES}
    for s in sequences:
        counts[parse_name(s).genre] += 1
    return {g: c for g, c in counts.items() if c}


def read_name_list(path: str | Path) -> list[str]:
    """A text file of sequence names, one per line (blank lines and ``#`` comments skipped), each validated;
    a name repeated later in the file is kept once (official-format exports write a lone name twice)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise AistppError("list file not found", path) from None
    names = []
    for i, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            names.append(parse_name(line).sequence)
        except AistppError as err:
            raise AistppError(f"line {i}: {err}", path) from None
    return list(dict.fromkeys(names))


def select_sequences(universe: Iterable[str], split=None, genres=None, *, ignore: Iterable[str] = (),
                     split_dir: str | Path | None = None, missing: str = "keep", where: str = "") -> list[str]:
    """The one selection rule behind ``aistpp reconstruct`` (an annotation tree) and the datasets (a corpus).

    Args:
        universe: the available sequence names, in order (mapping.txt order, or the corpus's).
        split: None = the universe; a name in :data:`SPLIT_NAMES` = ``split_dir/<name>.txt`` when that file exists,
            else this module's rule on the universe without the names in ``ignore``; the path of a file of names,
            or an iterable of names = those, in their order.
        genres: None, a comma string ``"gBR,gPO"`` or an iterable of genre codes: keep only those.
        missing: names a file or list asks for that the universe lacks: ``"keep"`` them (a run then reports
            each as failed, with the reason) or ``"drop"`` them with a warning naming ``where``.
    Returns the names, each once, in order.
    """
    universe = [parse_name(s).sequence for s in universe]
    if split is None:
        names = universe
    else:
        asked = _asked_names(split, split_dir)
        if asked is None:  # a split name: the rule
            kind, _, subset = str(split).rpartition("_")
            names = make_splits(universe, SplitSpec(kind=kind), ignore=ignore)[subset]
        else:
            names = asked
            if missing == "drop":
                present = set(universe)
                absent = [n for n in names if n not in present]
                if absent:
                    log.warning("%s: %d of %d requested sequences are not in %s (e.g. %s)",
                                split if isinstance(split, (str, Path)) else "selection", len(absent), len(names),
                                where or "the selection", absent[0])
                names = [n for n in names if n in present]
    if genres is not None:
        codes = parse_genres(genres) if isinstance(genres, str) else tuple(genres)
        if codes:
            names = [n for n in names if parse_name(n).genre in set(codes)]
    seen: set = set()
    return [s for s in names if not (s in seen or seen.add(s))]


def _asked_names(split, split_dir) -> list[str] | None:
    """The names a split argument lists (a list, a file, ``split_dir/<name>.txt``), or None for a rule split."""
    if not isinstance(split, (str, Path)):
        return [parse_name(n).sequence for n in split]
    if Path(split).is_file():
        return read_name_list(split)
    if split_dir is not None and (Path(split_dir) / f"{split}.txt").is_file():
        return read_name_list(Path(split_dir) / f"{split}.txt")
    if str(split) not in SPLIT_NAMES:
        raise AistppError(f"unknown split {str(split)!r}: expected a file of names or one of {', '.join(SPLIT_NAMES)}")
    return None
