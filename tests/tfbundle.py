"""Test helper: WRITE TensorFlow tensor bundles (``PREFIX.index`` + ``PREFIX.data-00000-of-00001``) from the
documented format, independently of aistpp.models.tf_checkpoint (its own bitwise CRC32C, protobuf encoder and
SSTable builder), plus mint FACT variable naming for a model of our own with known random weights.

Format (TensorFlow core/util/tensor_bundle, core/lib/io/table -- LevelDB's table format): sorted keys in data
blocks of prefix-compressed entries with restart points, an index block of (separator key -> block handle), an
empty metaindex block, every block followed by [compression byte, masked crc32c of contents + that byte], and a
48-byte footer (two varint handles, zero padding, magic 0xdb4775248b80fb57). Key "" holds BundleHeaderProto,
every other key a BundleEntryProto; the data file holds the raw little-endian bytes.
"""

import struct

import numpy as np

MAGIC = 0xDB4775248B80FB57
DT = {np.dtype("float32"): 1, np.dtype("float64"): 2, np.dtype("int32"): 3, np.dtype("int64"): 9,
      np.dtype("float16"): 19}


def crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_varint(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def pb_bytes(field: int, value: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(value)) + value


def pb_fixed32(field: int, value: int) -> bytes:
    return varint(field << 3 | 5) + struct.pack("<I", value)


def entry_proto(dtype: int, shape, offset: int, size: int, crc: int) -> bytes:
    shape_pb = b"".join(pb_bytes(2, pb_varint(1, d)) for d in shape)
    out = pb_varint(1, dtype) + pb_bytes(2, shape_pb)  # shard_id 0 is the proto default: omitted, as TF does
    if offset:
        out += pb_varint(4, offset)
    return out + pb_varint(5, size) + pb_fixed32(6, masked(crc))


def header_proto(num_shards: int = 1) -> bytes:
    return pb_varint(1, num_shards) + pb_bytes(3, pb_varint(1, 1))  # version {producer: 1}


def build_block(items, restart_interval: int) -> bytes:
    out, restarts, last = bytearray(), [], b""
    for i, (key, value) in enumerate(items):
        if i % restart_interval == 0:
            restarts.append(len(out))
            shared = 0
        else:
            shared = 0
            while shared < min(len(key), len(last)) and key[shared] == last[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        last = key
    for r in restarts or [0]:
        out += struct.pack("<I", r)
    return bytes(out) + struct.pack("<I", len(restarts or [0]))


def write_table(path, items, block_size: int = 256, restart_interval: int = 3) -> None:
    """LevelDB-format table of sorted (key, value) byte pairs, several data blocks when they exceed
    ``block_size``."""
    items = sorted(items)
    buf = bytearray()

    def emit(block: bytes) -> bytes:
        handle = varint(len(buf)) + varint(len(block))
        buf.extend(block + b"\x00" + struct.pack("<I", masked(crc32c_bitwise(block + b"\x00"))))
        return handle

    index, chunk, size = [], [], 0
    for key, value in items:
        chunk.append((key, value))
        size += len(key) + len(value)
        if size >= block_size:
            index.append((chunk[-1][0], emit(build_block(chunk, restart_interval))))
            chunk, size = [], 0
    if chunk:
        index.append((chunk[-1][0], emit(build_block(chunk, restart_interval))))
    meta = emit(build_block([], restart_interval))
    idx = emit(build_block(index, 1))
    footer = meta + idx
    footer += b"\x00" * (40 - len(footer)) + struct.pack("<Q", MAGIC)
    buf.extend(footer)
    with open(path, "wb") as fh:
        fh.write(buf)


def write_bundle(prefix, tensors: dict, strings: dict | None = None, **table_kw) -> None:
    """``tensors`` {name: numpy array} (float32/64, int32/64, float16) and ``strings`` {name: bytes} (scalar
    DT_STRING, e.g. _CHECKPOINTABLE_OBJECT_GRAPH) -> PREFIX.index + PREFIX.data-00000-of-00001."""
    data = bytearray()
    items = [(b"", header_proto())]
    for name in sorted(set(tensors) | set(strings or {})):
        if strings and name in strings:
            s = strings[name]
            raw = varint(len(s))
            raw += struct.pack("<I", masked(crc32c_bitwise(raw))) + s
            items.append((name.encode(), entry_proto(7, (), len(data), len(raw), crc32c_bitwise(raw))))
        else:
            arr = np.asarray(tensors[name])
            raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes(order="C")
            items.append((name.encode(), entry_proto(DT[arr.dtype], arr.shape, len(data), len(raw),
                                                     crc32c_bitwise(raw))))
        data += raw
    write_table(f"{prefix}.index", items, **table_kw)
    with open(f"{prefix}.data-00000-of-00001", "wb") as fh:
        fh.write(data)


# ---------------------------------------------------------------------------------------- mint naming

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def mint_fact_variables(dims: dict, rng) -> dict:
    """Random weights under mint's checkpoint keys, written here from mint's Keras attribute paths (not from
    aistpp's map). dims: hidden, heads, mlp, motion_len, audio_len, motion_dim, audio_dim, and the layer counts
    motion_layers, audio_layers, cross_layers. Shapes are TF's: Dense kernels (in, out)."""
    d, h = dims["hidden"], dims["mlp"]
    v = {}

    def dense(path, n_in, n_out, bias=True):
        v[f"model/{path}/kernel{SUFFIX}"] = (rng.normal(size=(n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        if bias:
            v[f"model/{path}/bias{SUFFIX}"] = (0.2 * rng.normal(size=n_out)).astype(np.float32)

    def ln(path):
        v[f"model/{path}/gamma{SUFFIX}"] = (1 + 0.2 * rng.normal(size=d)).astype(np.float32)
        v[f"model/{path}/beta{SUFFIX}"] = (0.2 * rng.normal(size=d)).astype(np.float32)

    def transformer(net, layers):
        for i in range(layers):
            ln(f"{net}/layer_with_weights-{2 * i}/fn/norm")
            dense(f"{net}/layer_with_weights-{2 * i}/fn/fn/to_qkv", d, 3 * d, bias=False)
            dense(f"{net}/layer_with_weights-{2 * i}/fn/fn/to_out", d, d)
            ln(f"{net}/layer_with_weights-{2 * i + 1}/fn/norm")
            dense(f"{net}/layer_with_weights-{2 * i + 1}/fn/fn/net/layer_with_weights-0", d, h)
            dense(f"{net}/layer_with_weights-{2 * i + 1}/fn/fn/net/layer_with_weights-1", h, d)

    for mod in ("motion", "audio"):
        dense(f"{mod}_linear_embedding/net", dims[f"{mod}_dim"], d)
        v[f"model/{mod}_pos_embedding/position_embedding{SUFFIX}"] = \
            (0.3 * rng.normal(size=(dims[f"{mod}_len"], d))).astype(np.float32)
        transformer(f"{mod}_transformer/net", dims[f"{mod}_layers"])
    transformer("cross_modal_layer/transformer_layer/net", dims["cross_layers"])
    dense("cross_modal_layer/cross_output_layer", d, dims["motion_dim"])
    return v


def with_trainer_extras(variables: dict, rng, step: int = 7) -> tuple[dict, dict]:
    """Add what mint's trainer also saves: Adam slots (m, v) per variable, optimizer hyper-parameters,
    model/global_step (the optimizer's iteration counter), save_counter and the object graph."""
    out = dict(variables)
    for k, a in variables.items():
        base = k[:-len(SUFFIX)]
        for slot in ("m", "v"):
            out[f"{base}/.OPTIMIZER_SLOT/optimizer/{slot}{SUFFIX}"] = rng.normal(size=a.shape).astype(np.float32)
    for name, value in (("beta_1", 0.9), ("beta_2", 0.999), ("decay", 0.0)):
        out[f"optimizer/{name}{SUFFIX}"] = np.float32(value).reshape(())
    out[f"model/global_step{SUFFIX}"] = np.int64(step).reshape(())
    out[f"save_counter{SUFFIX}"] = np.int64(1).reshape(())
    return out, {"_CHECKPOINTABLE_OBJECT_GRAPH": b"\x0a\x00object graph stand-in"}


MINT_CONFIG = """
# mint text-format pipeline config (reduced fact_v5_deeper_t10_cm12)
multi_modal_model {{
  fact_model {{
    modality: {{
      feature_name: "audio"
      sequence_length: {audio_len}
      model: {{ transformer: {{ num_attention_heads: {heads} hidden_size: {hidden}
                               num_hidden_layers: {audio_layers} intermediate_size: {mlp} }} }}
    }}
    modality: {{
      feature_name: "motion"
      sequence_length: {motion_len}
      feature_dim: {motion_dim}
      model: {{
        transformer: {{
          num_attention_heads: {heads}
          hidden_size: {hidden}
          num_hidden_layers: {motion_layers}
          intermediate_size: {mlp}
        }}
      }}
    }}
    fk_path: "/mnt/data/smpl/SMPL_MALE.pkl"
    cross_modal_model: {{
      modality_a: "motion"
      modality_b: "audio"
      transformer: {{
        num_hidden_layers: {cross_layers}
        hidden_size: {hidden}
        num_attention_heads: {heads}
        intermediate_size: {mlp}
      }}
      output_layer: {{ out_dim: {motion_dim} }}
    }}
  }}
}}
train_dataset {{
  name: "train"
  target_length_sec: 2
  modality: {{ general_modality: {{ feature_name: "motion" dimension: 219 sample_rate: 1 }} }}
  modality: {{ general_modality: {{ feature_name: "audio" dimension: {audio_dim} sample_rate: 2 }} }}
}}
train_config: {{ batch_size: 32 }}
"""
