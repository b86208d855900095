"""Read TensorFlow checkpoints (the ``PREFIX.index`` + ``PREFIX.data-*`` tensor bundle) without TensorFlow.

The format, as documented in TensorFlow's ``core/util/tensor_bundle`` and ``core/lib/io/table``:

* ``PREFIX.index`` is a LevelDB-format sorted table (SSTable). Its 48-byte footer holds two block handles
  (varint64 offset and size of the metaindex and index blocks), padding and the magic ``0xdb4775248b80fb57``.
  Every block is followed by a 5-byte trailer: a compression byte (0 none, 1 snappy) and the masked CRC32C of
  the block contents plus that byte. A block is a run of entries ``varint32 shared, varint32 non_shared,
  varint32 value_length, key[shared:], value`` (each key shares ``shared`` leading bytes with the previous
  key), then the uint32 offsets of the restart points (entries with ``shared == 0``) and their count. The
  index block maps separator keys to the block handles of the data blocks.
* The data blocks map ``""`` to a serialized ``BundleHeaderProto`` {num_shards 1, endianness 2, version 3}
  and every tensor name to a ``BundleEntryProto`` {dtype 1, shape 2, shard_id 3, offset 4, size 5,
  crc32c 6 (fixed32, masked), slices 7}.
* ``PREFIX.data-SSSSS-of-NNNNN`` holds the raw little-endian tensor bytes at ``offset``; ``crc32c`` is the
  masked CRC32C of those bytes.

Both protobuf messages are decoded by hand (wire format: varints and length-delimited fields). CRC32C comes
from ``google-crc32c`` (Google's hardware-accelerated C library, the ``mint`` extra) when installed -- a released
FACT checkpoint holds about 1.4 GB -- and from a table implementation otherwise.

    bundle = TensorBundle("ckpt-215")           # or "ckpt-215.index", or the folder with a 'checkpoint' file
    bundle.keys()                               # tensor names, sorted
    bundle.read("model/.../kernel/.ATTRIBUTES/VARIABLE_VALUE")   # numpy array, CRC checked
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aistpp.errors import AistppError

log = logging.getLogger(__name__)

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5
HEADER_KEY = b""

# TensorFlow DataType enum -> numpy little-endian dtype (bfloat16 is widened to float32 on read)
DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 14: "bfloat16",
          17: "<u2", 19: "<f2", 22: "<u4", 23: "<u8"}
DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
               9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 19: "float16", 22: "uint32", 23: "uint64"}
DT_STRING = 7


# ------------------------------------------------------------------------------------------------- CRC32C

def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE: list[int] | None = None


def _crc32c_python(data) -> int:
    global _TABLE
    if _TABLE is None:
        _TABLE = _crc_table()
    table, crc = _TABLE, 0xFFFFFFFF
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # Google's C library (SSE4.2 / ARM CRC instructions): ~GB/s
    import google_crc32c as _gcrc

    def crc32c(data) -> int:
        """CRC32C (Castagnoli) of ``data``."""
        return int(_gcrc.value(bytes(data) if not isinstance(data, bytes) else data))

    CRC32C_BACKEND = "google-crc32c"
except ImportError:  # pragma: no cover - exercised where the extra is missing
    crc32c = _crc32c_python
    CRC32C_BACKEND = "python"


_WARNED: list = []


def mask_crc(crc: int) -> int:
    """LevelDB/TensorFlow CRC masking (rotate right 15, add a constant)."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# --------------------------------------------------------------------------------------- wire-format bits

class _Corrupt(Exception):
    """Internal: a decoding error, turned into an AistppError naming the file."""


def _varint(buf: bytes, pos: int, end: int | None = None) -> tuple[int, int]:
    end = len(buf) if end is None else end
    result = shift = 0
    while True:
        if pos >= end:
            raise _Corrupt("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Corrupt("varint longer than 10 bytes")


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Protobuf wire format -> [(field number, value)]: int for varint / fixed, bytes for length-delimited."""
    out, pos, n = [], 0, len(buf)
    while pos < n:
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise _Corrupt("protobuf field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > n:
                raise _Corrupt("truncated fixed64")
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > n:
                raise _Corrupt("truncated length-delimited field")
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            if pos + 4 > n:
                raise _Corrupt("truncated fixed32")
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise _Corrupt(f"unsupported protobuf wire type {wire}")
        out.append((field, value))
    return out


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


@dataclass(frozen=True)
class BundleEntry:
    """One tensor of the bundle (``BundleEntryProto``)."""

    name: str
    dtype: int               # TensorFlow DataType enum
    shape: tuple
    shard_id: int
    offset: int
    size: int
    crc32c: int              # masked
    sliced: bool = False     # partitioned variable (slices field): not supported by read()

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype, f"DataType {self.dtype}")


def _parse_shape(buf: bytes) -> tuple:
    dims = []
    for field, value in _fields(buf):
        if field == 2:  # Dim {int64 size = 1; string name = 2}
            size = 0
            for f, v in _fields(value):
                if f == 1:
                    size = _int64(v)
            dims.append(size)
        elif field == 3 and value:
            raise _Corrupt("tensor shape of unknown rank")
    return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> BundleEntry:
    vals = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "crc32c": 0, "sliced": False}
    for field, value in _fields(buf):
        if field == 1:
            vals["dtype"] = value
        elif field == 2:
            vals["shape"] = _parse_shape(value)
        elif field == 3:
            vals["shard_id"] = value
        elif field == 4:
            vals["offset"] = _int64(value)
        elif field == 5:
            vals["size"] = _int64(value)
        elif field == 6:
            vals["crc32c"] = value
        elif field == 7:
            vals["sliced"] = True
    return BundleEntry(name=name, **vals)


# ----------------------------------------------------------------------------------------------- SSTable

def _read_block(data: bytes, offset: int, size: int, what: str) -> bytes:
    end = offset + size
    if offset < 0 or size < 0 or end + BLOCK_TRAILER_SIZE > len(data) - FOOTER_SIZE:
        raise _Corrupt(f"{what} block [{offset}, {end}) lies past the end of the file ({len(data)} bytes)")
    contents = data[offset:end]
    kind = data[end]
    (stored,) = struct.unpack_from("<I", data, end + 1)
    if unmask_crc(stored) != crc32c(contents + bytes([kind])):
        raise _Corrupt(f"{what} block at offset {offset}: checksum mismatch")
    if kind == 1:
        raise _Corrupt(f"{what} block at offset {offset} is snappy-compressed (TensorFlow writes bundles "
                       "uncompressed; this file was not written by tf.train.Checkpoint)")
    if kind != 0:
        raise _Corrupt(f"{what} block at offset {offset}: unknown compression type {kind}")
    return contents


def _block_entries(block: bytes, what: str) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise _Corrupt(f"{what} block shorter than its restart count")
    (n_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * n_restarts
    if n_restarts < 1 or limit < 0:
        raise _Corrupt(f"{what} block: bad restart count {n_restarts}")
    restarts = set(struct.unpack_from(f"<{n_restarts}I", block, limit))
    out, pos, key = [], 0, b""
    while pos < limit:
        start = pos
        shared, pos = _varint(block, pos, limit)
        non_shared, pos = _varint(block, pos, limit)
        value_len, pos = _varint(block, pos, limit)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise _Corrupt(f"{what} block: entry at {start} overruns the block")
        if start in restarts and shared:
            raise _Corrupt(f"{what} block: restart entry at {start} shares a key prefix")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        out.append((key, block[pos:pos + value_len]))
        pos += value_len
    return out


def read_table(data: bytes) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of a LevelDB-format table held in ``data``, in file order."""
    if len(data) < FOOTER_SIZE:
        raise _Corrupt(f"{len(data)} bytes: shorter than the {FOOTER_SIZE}-byte table footer (truncated?)")
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
    if magic != TABLE_MAGIC:
        raise _Corrupt("no table magic number at the end (truncated, or not a TensorFlow checkpoint index)")
    pos = 0
    handles = []
    for _ in range(2):  # metaindex, index
        off, pos = _varint(footer, pos, FOOTER_SIZE - 8)
        size, pos = _varint(footer, pos, FOOTER_SIZE - 8)
        handles.append((off, size))
    index = _block_entries(_read_block(data, *handles[1], what="index"), "index")
    out = []
    for sep, handle in index:
        off, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        entries = _block_entries(_read_block(data, off, size, what="data"), "data")
        if entries and entries[-1][0] > sep:
            raise _Corrupt("index separator key sorts before its block's last key")
        out.extend(entries)
    keys = [k for k, _ in out]
    if any(a >= b for a, b in zip(keys, keys[1:])):
        raise _Corrupt("table keys are not strictly ascending")
    return out


# ------------------------------------------------------------------------------------------- the bundle

def resolve_prefix(path: str | Path) -> Path:
    """Checkpoint prefix from a prefix, a ``.index`` / ``.data-*`` file name, or a folder holding TensorFlow's
    ``checkpoint`` state file (its ``model_checkpoint_path``)."""
    p = Path(path)
    if p.is_dir():
        state = p / "checkpoint"
        if not state.is_file():
            found = sorted(p.glob("*.index"))
            if len(found) == 1:
                return found[0].with_suffix("")
            raise AistppError("folder has no TensorFlow 'checkpoint' file and not exactly one *.index", p)
        m = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', state.read_text(errors="replace"), re.M)
        if not m:
            raise AistppError("no model_checkpoint_path in the TensorFlow checkpoint state file", state)
        q = Path(m.group(1))
        return q if q.is_absolute() and Path(str(q) + ".index").is_file() else p / q.name
    name = p.name
    if name.endswith(".index"):
        return p.with_name(name[:-len(".index")])
    m = re.match(r"(.*)\.data-\d{5}-of-\d{5}$", name)
    if m:
        return p.with_name(m.group(1))
    return p


class TensorBundle:
    """A TensorFlow checkpoint (tensor bundle) opened for reading. Keys are the checkpoint's tensor names."""

    def __init__(self, prefix: str | Path):
        self.prefix = resolve_prefix(prefix)
        self.index_path = Path(str(self.prefix) + ".index")
        if not self.index_path.is_file():
            raise AistppError("TensorFlow checkpoint index not found (give the prefix, e.g. ckpt-215, or its "
                              ".index file)", self.index_path)
        try:
            table = read_table(self.index_path.read_bytes())
            if not table or table[0][0] != HEADER_KEY:
                raise _Corrupt("no bundle header (empty first key)")
            header = dict(_fields(table[0][1]))
            self.num_shards = int(header.get(1, 0))
            if header.get(2, 0) != 0:
                raise _Corrupt("big-endian bundle: not supported")
            entries = {}
            for key, value in table[1:]:
                name = key.decode("utf-8", errors="replace")
                entries[name] = _parse_entry(name, value)
        except _Corrupt as err:
            raise AistppError(f"corrupt TensorFlow checkpoint index: {err}", self.index_path) from None
        self.entries: dict[str, BundleEntry] = entries
        for e in entries.values():
            if e.shard_id >= max(self.num_shards, 1) and not e.sliced:
                raise AistppError(f"corrupt TensorFlow checkpoint index: tensor {e.name} in shard {e.shard_id} of "
                                  f"{self.num_shards}", self.index_path)

    def keys(self) -> list[str]:
        return list(self.entries)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def data_path(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}")

    def read(self, name: str, verify: bool = True) -> np.ndarray:
        """The tensor ``name`` as a numpy array (bfloat16 widened to float32); ``verify`` checks its CRC32C."""
        if name not in self.entries:
            raise AistppError(f"no tensor {name!r} in the checkpoint", self.index_path)
        e = self.entries[name]
        if e.sliced:
            raise AistppError(f"tensor {name} is a partitioned (sliced) variable: not supported", self.index_path)
        if e.dtype not in DTYPES:
            raise AistppError(f"tensor {name} has dtype {e.dtype_name}: not readable as an array", self.index_path)
        count = int(np.prod(e.shape, dtype=np.int64)) if e.shape else 1
        item = 2 if DTYPES[e.dtype] == "bfloat16" else np.dtype(DTYPES[e.dtype]).itemsize
        path = self.data_path(e.shard_id)
        if any(d < 0 for d in e.shape) or count * item != e.size:
            raise AistppError(f"tensor {name}: index says {e.size} bytes for shape {list(e.shape)} "
                              f"{e.dtype_name} (corrupt index)", self.index_path)
        buf = bytearray(e.size)
        try:
            with open(path, "rb") as fh:
                fh.seek(e.offset)
                got = fh.readinto(buf)
        except FileNotFoundError:
            raise AistppError("checkpoint data file not found", path) from None
        if got != e.size:
            raise AistppError(f"truncated checkpoint data: tensor {name} needs bytes [{e.offset}, "
                              f"{e.offset + e.size}), file has {path.stat().st_size}", path)
        if verify and CRC32C_BACKEND == "python" and e.size > 1 << 24 and not _WARNED:
            _WARNED.append(True)
            log.warning("checking CRC32C in pure Python (~4 MB/s): install google-crc32c (pip install "
                        "'aistpp[mint]') or skip the check (verify=False, --no-verify)")
        if verify and unmask_crc(e.crc32c) != crc32c(buf):
            raise AistppError(f"checksum mismatch in tensor {name} (corrupt checkpoint data)", path)
        if DTYPES[e.dtype] == "bfloat16":
            bits = np.frombuffer(buf, "<u2").astype(np.uint32) << 16
            return bits.view(np.float32).reshape(e.shape)
        return np.frombuffer(buf, DTYPES[e.dtype]).reshape(e.shape)


__all__ = ["TensorBundle", "BundleEntry", "read_table", "resolve_prefix", "crc32c", "mask_crc", "unmask_crc"]
