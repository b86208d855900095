"""Which sequences of an annotation tree to run: a thin wrapper of :func:`aistpp.splits.select_sequences`."""

from __future__ import annotations

import logging
from pathlib import Path

from aistpp.errors import AistppError

log = logging.getLogger("aistpp.pipeline")


def select_sequences(annotations: str | Path, sequences=None, genres=None, split: str | None = None,
                     source: str = "keypoints2d") -> list[str]:
    """The sequences to run, in mapping.txt order.

    ``sequences``: explicit names; ``split``: a split name (``crossmodal_train``, ``pose_test``... regenerated
    through :mod:`aistpp.splits`, or a file of that name in ``DIR/splits``) or the path of a file of names;
    otherwise every sequence that has a ``source`` file (keypoints2d/keypoints3d; all of mapping.txt for videos).
    ``genres`` (codes) filters the result; asked for alone, a genre means all its sequences in mapping.txt, like a
    split: one whose file is missing fails with that reason in the summary.
    """
    from aistpp import splits
    from aistpp.io.annotations import AnnotationTree

    tree = AnnotationTree.open(annotations)
    mapping = tree.mapping()
    if sequences:
        return splits.select_sequences((), list(sequences), genres)
    if split or genres or source == "videos":
        universe = list(mapping)
    else:
        from aistpp.naming import check_sequence_name

        have = set()
        for s in tree.sequences(source):
            try:
                have.add(check_sequence_name(s))
            except AistppError:  # a stray file in the folder is not a sequence
                log.warning("%s/%s.pkl ignored: not an AIST++ sequence name", source, s)
        universe = [s for s in mapping if s in have] + sorted(have - set(mapping))
    return splits.select_sequences(universe, split or None, genres, ignore=tree.ignore_list(),
                                   split_dir=tree.root / "splits", missing="keep")
