"""AIST++ names: sequences, videos, genres, dancers, situations, music and views.

A sequence name looks like ``gBR_sBM_cAll_d04_mBR0_ch01``; the video of one view replaces ``cAll`` by
``c01``..``c09``. Fields: genre ``g``, situation ``s`` (sBM basic, sFM advanced), camera ``c``, dancer ``d``,
music ``m`` (genre code + index 0..5), choreography ``ch``.

Facts (from the AIST Dance DB and checked on the official ``mapping.txt``): 10 genres, 3 dancers each, 6 musics
per genre; music tempo is 80 + 10 k BPM for ``m<G>k`` except House, whose ``mHOk`` is 110 + 5 k BPM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aistpp.errors import AistppError

GENRES: dict[str, str] = {
    "gBR": "Break",
    "gPO": "Pop",
    "gLO": "Lock",
    "gMH": "Middle Hip-hop",
    "gLH": "LA style Hip-hop",
    "gHO": "House",
    "gWA": "Waack",
    "gKR": "Krump",
    "gJS": "Street Jazz",
    "gJB": "Ballet Jazz",
}

DANCERS: dict[str, tuple[str, ...]] = {
    "gBR": ("d04", "d05", "d06"),
    "gPO": ("d10", "d11", "d12"),
    "gLO": ("d13", "d14", "d15"),
    "gMH": ("d22", "d23", "d24"),
    "gLH": ("d16", "d17", "d18"),
    "gHO": ("d19", "d20", "d21"),
    "gWA": ("d25", "d26", "d27"),
    "gKR": ("d28", "d29", "d30"),
    "gJS": ("d01", "d02", "d03"),
    "gJB": ("d07", "d08", "d09"),
}

SITUATIONS: dict[str, str] = {"sBM": "basic", "sFM": "advanced"}

VIEWS: tuple[str, ...] = tuple(f"c{i:02d}" for i in range(1, 10))
ALL_VIEWS = "cAll"


def view_name(index: int) -> str:
    """The camera name users read for a 0-based view index: 0 -> ``c01``, 4 -> ``c05`` (any index >= 0)."""
    return f"c{int(index) + 1:02d}"


def view_names(indices) -> str:
    """Comma list of camera names for 0-based view indices: ``[2, 4]`` -> ``c03, c05``."""
    return ", ".join(view_name(i) for i in indices)

MUSIC_IDS: tuple[str, ...] = tuple(f"m{g[1:]}{k}" for g in GENRES for k in range(6))

_NAME_RE = re.compile(
    r"^(?P<genre>g[A-Z]{2})_(?P<situation>s[A-Z]{2})_(?P<camera>cAll|c\d{2})_(?P<dancer>d\d{2})"
    r"_(?P<music>m[A-Z]{2}\d)_(?P<choreo>ch\d{2})$"
)


def check_genre(code: str) -> str:
    """Return ``code`` if it is one of the 10 genre codes (``gBR``...), else raise naming the known ones."""
    if code not in GENRES:
        raise AistppError(f"unknown genre {code!r}; known genres: {', '.join(GENRES)}")
    return code


def parse_genres(text: str | None) -> tuple[str, ...] | None:
    """Parse a comma list like ``"gBR,gPO"`` (``None`` or empty -> ``None``)."""
    if not text:
        return None
    return tuple(check_genre(g.strip()) for g in text.split(",") if g.strip())


def music_tempo(music_id: str) -> int:
    """Tempo in BPM of a music id: ``m<G>k`` -> 80 + 10 k, House ``mHOk`` -> 110 + 5 k."""
    if music_id not in MUSIC_IDS:
        raise AistppError(f"unknown music id {music_id!r}; expected m<genre><0-5>, e.g. mBR0")
    k = int(music_id[3])
    return 110 + 5 * k if music_id.startswith("mHO") else 80 + 10 * k


def music_genre(music_id: str) -> str:
    """Genre code of a music id (``mBR3`` -> ``gBR``)."""
    music_tempo(music_id)  # validates
    return "g" + music_id[1:3]


@dataclass(frozen=True)
class SequenceName:
    """The parsed fields of a sequence or video name.

    ``camera`` is ``"cAll"`` for a sequence (all 9 views) or ``"c01"``..``"c09"`` for one view's video.
    """

    genre: str
    situation: str
    camera: str
    dancer: str
    music: str
    choreography: str

    def __str__(self) -> str:
        return "_".join((self.genre, self.situation, self.camera, self.dancer, self.music, self.choreography))

    @property
    def sequence(self) -> str:
        """The sequence name (camera ``cAll``)."""
        return str(self.with_view(ALL_VIEWS))

    @property
    def is_video(self) -> bool:
        return self.camera != ALL_VIEWS

    @property
    def genre_name(self) -> str:
        return GENRES[self.genre]

    @property
    def situation_name(self) -> str:
        return SITUATIONS[self.situation]

    @property
    def tempo(self) -> int:
        """Music tempo in BPM."""
        return music_tempo(self.music)

    @property
    def dancer_number(self) -> int:
        return int(self.dancer[1:])

    def with_view(self, view: str) -> "SequenceName":
        """The same take seen from ``view`` (``c01``..``c09``, or ``cAll`` for the sequence)."""
        if view != ALL_VIEWS and view not in VIEWS:
            raise AistppError(f"unknown view {view!r}; expected c01..c09 or cAll")
        return SequenceName(self.genre, self.situation, view, self.dancer, self.music, self.choreography)

    def video_names(self) -> list[str]:
        """The 9 video names of this sequence, c01..c09."""
        return [str(self.with_view(v)) for v in VIEWS]

    def as_dict(self) -> dict:
        """Plain attributes for storage: codes plus derived names and tempo."""
        return {
            "sequence": self.sequence,
            "genre": self.genre,
            "genre_name": self.genre_name,
            "situation": self.situation,
            "dancer": self.dancer,
            "music": self.music,
            "tempo": self.tempo,
            "choreography": self.choreography,
        }


def parse_name(name: str) -> SequenceName:
    """Parse a sequence (``gBR_sBM_cAll_d04_mBR0_ch01``) or video (``gBR_sBM_c05_d04_mBR0_ch01``) name.

    Raises :class:`AistppError` on a malformed name or an unknown genre, situation, view, dancer or music code.
    """
    m = _NAME_RE.match(name.strip()) if isinstance(name, str) else None
    if m is None:
        raise AistppError(f"malformed AIST++ name {name!r}; expected like gBR_sBM_cAll_d04_mBR0_ch01")
    f = m.groupdict()
    check_genre(f["genre"])
    if f["situation"] not in SITUATIONS:
        raise AistppError(f"unknown situation {f['situation']!r} in {name!r}; expected sBM or sFM")
    if f["camera"] != ALL_VIEWS and f["camera"] not in VIEWS:
        raise AistppError(f"unknown view {f['camera']!r} in {name!r}; expected c01..c09 or cAll")
    if f["dancer"] not in DANCERS[f["genre"]]:
        raise AistppError(
            f"dancer {f['dancer']!r} does not dance {f['genre']} in {name!r}; expected one of {DANCERS[f['genre']]}"
        )
    if f["music"] not in MUSIC_IDS:
        raise AistppError(f"unknown music {f['music']!r} in {name!r}")
    return SequenceName(f["genre"], f["situation"], f["camera"], f["dancer"], f["music"], f["choreo"])


def check_sequence_name(name, where=None) -> str:
    """The one validator of sequence names at every boundary where a name becomes a key or a path (corpus writer,
    reader and manifest, import, export, viz): ``name`` must be exactly a well-formed AIST++ sequence name
    (``gBR_sBM_cAll_d04_mBR0_ch01``: camera ``cAll``, no surrounding spaces), so it can never hold a path separator,
    ``..`` or a control character. Returns ``name``; raises :class:`AistppError` (naming ``where``) otherwise."""
    ok = isinstance(name, str) and _NAME_RE.match(name) is not None
    if ok:
        try:
            ok = str(parse_name(name)) == name and not parse_name(name).is_video
        except AistppError:
            ok = False
    if not ok:
        raise AistppError(f"bad sequence name {str(name)[:80]!r}: expected an AIST++ sequence name like "
                          "gBR_sBM_cAll_d04_mBR0_ch01", where)
    return name


_TOKEN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_token(value, what: str = "name", where=None) -> str:
    """A short name that may become one path component (a camera setting, a music id): letters, digits, ``_``,
    ``-`` and ``.``, not starting with ``.``; raises :class:`AistppError` otherwise."""
    if not isinstance(value, str) or not _TOKEN_RE.match(value) or ".." in value:
        raise AistppError(f"bad {what} {str(value)[:80]!r}: expected letters, digits, '_', '-' or '.'", where)
    return value


def build_name(genre: str, situation: str, dancer: str | int, music: str, choreography: str | int,
               view: str = ALL_VIEWS) -> str:
    """Build a sequence (or, with ``view``, a video) name from its fields; the result is validated."""
    if isinstance(dancer, int):
        dancer = f"d{dancer:02d}"
    if isinstance(choreography, int):
        choreography = f"ch{choreography:02d}"
    return str(parse_name("_".join((genre, situation, view, dancer, music, choreography))))


def sequence_of(video_name: str) -> str:
    """The sequence a video belongs to (``gBR_sBM_c05_d04_mBR0_ch01`` -> ``gBR_sBM_cAll_d04_mBR0_ch01``)."""
    return parse_name(video_name).sequence
