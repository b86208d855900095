"""Sharded HDF5 corpus: manifest, atomic writer, reader, verify, official import/export.

    from aistpp.corpus import Corpus
    c = Corpus("corpus/")
    for seq in c.sequences(genre="gBR"):
        d = c.read(seq, fields=("keypoints3d", "smpl_poses"), frames=slice(0, 600))

Layout and shapes: :mod:`aistpp.corpus.schema`; manifest: :mod:`aistpp.corpus.manifest`.
"""

from aistpp.corpus.manifest import config_hash, is_corpus, read_manifest
from aistpp.corpus.official import camera_arrays, export_npz, export_official, import_official, sequence_attrs
from aistpp.corpus.reader import Corpus
from aistpp.corpus.schema import FIELDS, SCHEMA_VERSION
from aistpp.corpus.verify import VerifyReport, format_corpus_summary, summarize_corpus, verify_corpus
from aistpp.corpus.writer import CorpusWriter

__all__ = ["Corpus", "CorpusWriter", "FIELDS", "SCHEMA_VERSION", "VerifyReport", "camera_arrays", "config_hash",
           "export_npz", "export_official", "format_corpus_summary", "import_official", "is_corpus",
           "read_manifest", "sequence_attrs", "summarize_corpus", "verify_corpus"]
