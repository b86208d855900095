"""Exports of SMPL motions for other tools: BVH (Blender, MotionBuilder, Maya) and AMASS-style npz.

AIST++ motions (official ``motions/*.pkl``): ``smpl_poses`` (N, 72) axis-angle (global orient + 23 joints),
``smpl_trans`` (N, 3) cm, ``smpl_scaling`` (1,); world joints in cm = ``smpl_scaling * SMPL(pose, betas=0) +
smpl_trans``, world frame +y up.

BVH (:func:`write_bvh`): the SMPL 24-joint tree. Rest offsets in cm are the body model's rest joints
(``J_regressor @ v_template``, betas 0) times ``smpl_scaling``; the root carries 6 channels (position in cm, then
rotation), every other joint 3 Euler rotation channels (``ZXY`` by default, i.e. ``R = Rz @ Rx @ Ry``, degrees).
The root OFFSET is 0 and its position channels hold the world pelvis position ``smpl_scaling * J_pelvis +
smpl_trans``, so readers that add or ignore the root offset agree. SMPL's rest pose has identity joint rotations, so
the BVH local rotations are exactly the SMPL axis-angle rotations.

:func:`read_bvh` + :func:`bvh_forward_kinematics` are an independent parser and forward kinematics (own Euler
matrices, no scipy) used to check an export: they reproduce the SMPL joints to well under a millimetre.

AMASS (:func:`amass_arrays` / :func:`write_amass_npz`): keys ``poses`` (N, 156) SMPL+H layout (root + 21 body joints,
hand joints zero) or (N, 72) SMPL, ``trans`` (N, 3) metres for a unit-scale body (= ``smpl_trans / smpl_scaling``,
the canonical form), ``betas`` zeros, ``gender`` "male" (AIST++ fits used the male model), ``mocap_framerate`` 60.
AMASS is +z up; AIST++ is +y up. With ``up="z"`` (default) the motion is rotated by +90 deg about x (y -> z, z -> -y)
by changing the global orientation and translation; since SMPL rotates about the pelvis, the translation needs the
body model's rest pelvis ``J0``: ``trans' = Q (J0 + trans) - J0``. ``up="y"`` keeps the AIST++ frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aistpp.errors import AistppError
from aistpp.io.atomic import atomic_path, atomic_write_text

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)
# SMPL kinematic tree (kintree_table[0]); -1 = root.
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

# +90 deg about x: maps AIST++ / SMPL +y up to AMASS +z up ((x, y, z) -> (x, -z, y)).
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

_AXES = {"X": 0, "Y": 1, "Z": 2}


def _check_motion(smpl_poses, smpl_trans, smpl_scaling):
    poses = np.asarray(smpl_poses, np.float64)
    trans = np.asarray(smpl_trans, np.float64)
    if poses.ndim != 2 or poses.shape[1] != 72:
        raise AistppError(f"smpl_poses must be (N, 72) axis-angle, got {poses.shape}")
    if trans.shape != (len(poses), 3):
        raise AistppError(f"smpl_trans must be (N={len(poses)}, 3), got {trans.shape}")
    scaling = float(np.asarray(smpl_scaling, np.float64).reshape(-1)[0])
    if not np.isfinite(scaling) or scaling <= 0:
        raise AistppError(f"smpl_scaling must be a positive number, got {scaling}")
    return poses, trans, scaling


def rest_skeleton(body_model) -> tuple[np.ndarray, tuple[int, ...]]:
    """Rest joints (24, 3) in metres (``J_regressor @ v_template``, betas 0) and parents (24,) of a body model.

    ``body_model``: a ``smplx.SMPL``-like module (``J_regressor``, ``v_template``, ``parents`` buffers), as returned by
    :func:`aistpp.smpl.load_body_model`.
    """
    def _np(x):
        x = x.detach().cpu().numpy() if hasattr(x, "detach") else x
        if hasattr(x, "toarray"):
            x = x.toarray()
        return np.asarray(x, np.float64)

    try:
        jreg = _np(body_model.J_regressor)
        vt = _np(body_model.v_template)
        parents = _np(body_model.parents).astype(np.int64).ravel()
    except AttributeError as err:
        raise AistppError(f"body model lacks SMPL buffers ({err})") from None
    joints = jreg @ vt
    parents = [int(p) for p in parents]
    parents[0] = -1  # smplx stores the root's parent as -1 (or a huge uint when read from kintree_table)
    return joints[:24], tuple(parents[:24])


def _depth_first(parents) -> list[int]:
    children: dict[int, list[int]] = {}
    for j, p in enumerate(parents):
        children.setdefault(p, []).append(j)
    order: list[int] = []
    stack = list(reversed(children.get(-1, [])))
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children.get(j, [])))
    return order


def _euler_from_rotvec(rotvec: np.ndarray, order: str) -> np.ndarray:
    """Axis-angle (..., 3) -> intrinsic Euler angles (..., 3) in degrees: ``R = R_a @ R_b @ R_c`` for order abc."""
    from scipy.spatial.transform import Rotation

    flat = rotvec.reshape(-1, 3)
    eul = Rotation.from_rotvec(flat).as_euler(order.upper(), degrees=True)
    return eul.reshape(rotvec.shape)


def bvh_text(smpl_poses, smpl_trans, smpl_scaling, rest_joints, parents=SMPL_PARENTS, names=SMPL_JOINT_NAMES,
             fps: float = 60.0, order: str = "ZXY", decimals: int = 6) -> str:
    """The BVH file text of an AIST++ motion (see the module docstring for the conventions).

    smpl_poses (N, 72) axis-angle; smpl_trans (N, 3) cm; smpl_scaling (1,); rest_joints (J=24, 3) metres, betas 0;
    parents (J,); order: Euler channel order, ``ZXY`` or ``XYZ`` (any permutation works).
    """
    poses, trans, scaling = _check_motion(smpl_poses, smpl_trans, smpl_scaling)
    order = order.upper()
    if sorted(order) != ["X", "Y", "Z"]:
        raise AistppError(f"Euler order must be a permutation of XYZ, got {order!r}")
    rest = np.asarray(rest_joints, np.float64)
    n_joints = len(parents)
    if rest.shape != (n_joints, 3) or poses.shape[1] != 3 * n_joints:
        raise AistppError(f"rest joints {rest.shape} / poses {poses.shape} do not fit a {n_joints}-joint tree")
    offsets = np.zeros_like(rest)
    for j, p in enumerate(parents):
        if p >= 0:
            offsets[j] = (rest[j] - rest[p]) * scaling
    children = {p for p in parents}
    dfs = _depth_first(parents)
    fmt = f"{{:.{decimals}f}}"
    rot_channels = " ".join(f"{a}rotation" for a in order)

    lines = ["HIERARCHY"]
    depth = {}
    stack_close: list[int] = []  # joints whose braces are open

    def close_until(level):
        while stack_close and depth[stack_close[-1]] >= level:
            j = stack_close.pop()
            lines.append("  " * depth[j] + "}")

    for j in dfs:
        p = parents[j]
        depth[j] = 0 if p < 0 else depth[p] + 1
        close_until(depth[j])
        ind = "  " * depth[j]
        kind = "ROOT" if p < 0 else "JOINT"
        lines.append(f"{ind}{kind} {names[j]}")
        lines.append(f"{ind}{{")
        lines.append(f"{ind}  OFFSET " + " ".join(fmt.format(v) for v in offsets[j]))
        if p < 0:
            lines.append(f"{ind}  CHANNELS 6 Xposition Yposition Zposition {rot_channels}")
        else:
            lines.append(f"{ind}  CHANNELS 3 {rot_channels}")
        if j not in children:
            # End site: half the incoming bone further on (the root-to-head direction for a childless root).
            tip = 0.5 * offsets[j] if p >= 0 else np.array([0.0, 10.0, 0.0])
            lines.append(f"{ind}  End Site")
            lines.append(f"{ind}  {{")
            lines.append(f"{ind}    OFFSET " + " ".join(fmt.format(v) for v in tip))
            lines.append(f"{ind}  }}")
        stack_close.append(j)
    close_until(0)

    n = len(poses)
    root_pos = scaling * rest[0][None, :] + trans  # (N, 3) cm
    eul = _euler_from_rotvec(poses.reshape(n, n_joints, 3), order)  # (N, J, 3) deg
    cols = [root_pos] + [eul[:, j] for j in dfs]
    motion = np.concatenate(cols, axis=1)
    lines += ["MOTION", f"Frames: {n}", f"Frame Time: {1.0 / fps:.8f}"]
    lines += [" ".join(fmt.format(v) for v in row) for row in motion]
    return "\n".join(lines) + "\n"


def write_bvh(path, smpl_poses, smpl_trans, smpl_scaling, rest_joints, parents=SMPL_PARENTS,
              names=SMPL_JOINT_NAMES, fps: float = 60.0, order: str = "ZXY") -> Path:
    """Write :func:`bvh_text` to ``path`` atomically; returns the path."""
    atomic_write_text(path, bvh_text(smpl_poses, smpl_trans, smpl_scaling, rest_joints, parents, names, fps, order))
    return Path(path)


@dataclass(frozen=True)
class BVH:
    """A parsed BVH file. names (J,), parents (J,) (-1 = root), offsets (J, 3), channels: per joint a tuple of
    channel names (e.g. ``("Xposition", ..., "Zrotation", ...)``), frame_time seconds, motion (F, C) in file order."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    frame_time: float
    motion: np.ndarray

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


def read_bvh(path) -> BVH:
    """Parse a BVH file (any joint order, channel order and End Sites; End Sites are dropped)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AistppError("BVH file not found", path) from None
    head, sep, tail = text.partition("MOTION")
    if not sep:
        raise AistppError("not a BVH file: no MOTION section", path)
    tokens = re.findall(r"[{}]|[^\s{}]+", head)
    names, parents, offsets, channels = [], [], [], []
    stack: list[int] = []  # joint index per open brace (-2 for an End Site)
    pending = None
    i = 0
    try:
        while i < len(tokens):
            t = tokens[i]
            if t in ("ROOT", "JOINT"):
                pending = tokens[i + 1]
                i += 2
            elif t == "End":
                pending = "__end__"
                i += 2
            elif t == "{":
                if pending == "__end__":
                    stack.append(-2)
                else:
                    parent = next((s for s in reversed(stack) if s >= 0), -1)
                    names.append(pending)
                    parents.append(parent)
                    offsets.append(np.zeros(3))
                    channels.append(())
                    stack.append(len(names) - 1)
                pending = None
                i += 1
            elif t == "}":
                stack.pop()
                i += 1
            elif t == "OFFSET":
                vals = np.array([float(v) for v in tokens[i + 1:i + 4]])
                if stack and stack[-1] >= 0:
                    offsets[stack[-1]] = vals
                i += 4
            elif t == "CHANNELS":
                k = int(tokens[i + 1])
                channels[stack[-1]] = tuple(tokens[i + 2:i + 2 + k])
                i += 2 + k
            else:
                i += 1
    except (IndexError, ValueError) as err:
        raise AistppError(f"malformed BVH hierarchy ({err})", path) from None
    lines = [ln for ln in tail.strip().splitlines() if ln.strip()]
    try:
        n_frames = int(lines[0].split(":")[1])
        frame_time = float(lines[1].split(":")[1])
        motion = np.array([[float(v) for v in ln.split()] for ln in lines[2:2 + n_frames]], np.float64)
    except (IndexError, ValueError) as err:
        raise AistppError(f"malformed BVH MOTION section ({err})", path) from None
    n_channels = sum(len(c) for c in channels)
    if motion.shape != (n_frames, n_channels):
        raise AistppError(f"MOTION has shape {motion.shape}, expected ({n_frames}, {n_channels})", path)
    return BVH(tuple(names), tuple(parents), np.stack(offsets) if offsets else np.zeros((0, 3)),
               tuple(channels), frame_time, motion)


def _axis_matrix(axis: str, deg: np.ndarray) -> np.ndarray:
    """Elementary rotations (F, 3, 3) about one axis by ``deg`` degrees (right-handed)."""
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    if axis == "X":
        m = [one, zero, zero, zero, c, -s, zero, s, c]
    elif axis == "Y":
        m = [c, zero, s, zero, one, zero, -s, zero, c]
    else:
        m = [c, -s, zero, s, c, zero, zero, zero, one]
    return np.stack(m, axis=-1).reshape(a.shape + (3, 3))


def bvh_forward_kinematics(bvh: BVH) -> np.ndarray:
    """World joint positions (F, J, 3) of a parsed BVH, in the file's units.

    Per joint: local = translate(OFFSET + position channels) @ rotate(rotation channels, composed in channel order);
    global = global(parent) @ local.
    """
    n_frames = len(bvh.motion)
    n_joints = len(bvh.names)
    rot = np.zeros((n_frames, n_joints, 3, 3))
    pos = np.zeros((n_frames, n_joints, 3))
    col = 0
    for j in range(n_joints):
        local_r = np.broadcast_to(np.eye(3), (n_frames, 3, 3)).copy()
        local_t = np.broadcast_to(bvh.offsets[j], (n_frames, 3)).copy()
        for ch in bvh.channels[j]:
            vals = bvh.motion[:, col]
            col += 1
            axis, kind = ch[0].upper(), ch[1:].lower()
            if kind == "position":
                local_t[:, _AXES[axis]] += vals
            elif kind == "rotation":
                local_r = local_r @ _axis_matrix(axis, vals)
            else:
                raise AistppError(f"unknown BVH channel {ch!r}")
        p = bvh.parents[j]
        if p < 0:
            rot[:, j] = local_r
            pos[:, j] = local_t
        else:
            rot[:, j] = rot[:, p] @ local_r
            pos[:, j] = pos[:, p] + np.einsum("fij,fj->fi", rot[:, p], local_t)
    return pos


def amass_arrays(smpl_poses, smpl_trans, smpl_scaling, pelvis_rest=None, up: str = "z", layout: str = "smplh",
                 gender: str = "male", fps: float = 60.0) -> dict:
    """AMASS-style arrays of an AIST++ motion (see the module docstring).

    smpl_poses (N, 72); smpl_trans (N, 3) cm; smpl_scaling (1,); pelvis_rest (3,) metres: the body model's rest
    pelvis joint (betas 0), needed for ``up="z"``; layout ``smplh`` -> poses (N, 156), betas (16,), or ``smpl`` ->
    poses (N, 72), betas (10,). Returns {poses, trans (N, 3) m, betas, gender, mocap_framerate, up}.
    """
    poses, trans, scaling = _check_motion(smpl_poses, smpl_trans, smpl_scaling)
    trans_m = trans / scaling
    poses = poses.copy()
    if up == "z":
        if pelvis_rest is None:
            raise AistppError("up='z' needs the body model's rest pelvis joint (pass a body model)")
        from scipy.spatial.transform import Rotation

        j0 = np.asarray(pelvis_rest, np.float64).reshape(3)
        root = Rotation.from_matrix(Y_UP_TO_Z_UP) * Rotation.from_rotvec(poses[:, :3])
        poses[:, :3] = root.as_rotvec()
        trans_m = (j0 + trans_m) @ Y_UP_TO_Z_UP.T - j0
    elif up != "y":
        raise AistppError(f"up must be 'y' or 'z', got {up!r}")
    if layout == "smplh":
        out_poses = np.zeros((len(poses), 156))
        out_poses[:, :66] = poses[:, :66]  # root + 21 body joints; SMPL's 2 hand joints have no SMPL+H twin
        betas = np.zeros(16)
    elif layout == "smpl":
        out_poses, betas = poses, np.zeros(10)
    else:
        raise AistppError(f"layout must be 'smplh' or 'smpl', got {layout!r}")
    return {"poses": out_poses.astype(np.float32), "trans": trans_m.astype(np.float32), "betas": betas,
            "gender": np.array(gender), "mocap_framerate": np.array(float(fps)), "up": np.array(up)}


def write_amass_npz(path, smpl_poses, smpl_trans, smpl_scaling, pelvis_rest=None, up: str = "z",
                    layout: str = "smplh", gender: str = "male", fps: float = 60.0) -> Path:
    """Write :func:`amass_arrays` as an uncompressed ``.npz`` (atomically); returns the path."""
    arrays = amass_arrays(smpl_poses, smpl_trans, smpl_scaling, pelvis_rest, up, layout, gender, fps)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return Path(path)


EXPORT_FORMATS = ("bvh", "amass")


def export_motion(fmt: str, out_path, motion: dict, body_model, fps: float = 60.0, **options) -> Path:
    """Export one motion dict (``smpl_poses``, ``smpl_trans``, ``smpl_scaling``) as ``bvh`` or ``amass``.

    ``body_model``: the SMPL-like model whose rest skeleton is used (:func:`aistpp.smpl.load_body_model`).
    Options: ``order`` (bvh), ``up`` / ``layout`` / ``gender`` (amass). The entry point for ``aistpp export``.
    """
    for key in ("smpl_poses", "smpl_trans", "smpl_scaling"):
        if key not in motion:
            raise AistppError(f"motion lacks {key!r}; has {sorted(motion)}")
    rest, parents = rest_skeleton(body_model)
    if fmt == "bvh":
        return write_bvh(out_path, motion["smpl_poses"], motion["smpl_trans"], motion["smpl_scaling"], rest,
                         parents, fps=fps, order=options.get("order", "ZXY"))
    if fmt == "amass":
        return write_amass_npz(out_path, motion["smpl_poses"], motion["smpl_trans"], motion["smpl_scaling"],
                               pelvis_rest=rest[0], up=options.get("up", "z"), layout=options.get("layout", "smplh"),
                               gender=options.get("gender", "male"), fps=fps)
    raise AistppError(f"unknown export format {fmt!r}; expected one of {EXPORT_FORMATS}")


def export_suffix(fmt: str) -> str:
    """File suffix of an export format."""
    return {"bvh": ".bvh", "amass": ".npz"}[fmt]


def export_corpus_motions(corpus, out_dir, fmt: str, sequences=None, body_model=None, progress: bool = False,
                          **options) -> int:
    """Export the SMPL motions of a corpus as ``<out_dir>/<seq>.bvh`` or ``<seq>.npz`` (AMASS-style); returns the
    number of files written. Sequences without SMPL are skipped (logged). ``body_model`` None: the stand-in.

    ``corpus``: an :class:`aistpp.corpus.Corpus` or its path. Options as in :func:`export_motion`.
    """
    import logging

    from aistpp.corpus import Corpus

    log = logging.getLogger(__name__)
    if fmt not in EXPORT_FORMATS:
        raise AistppError(f"unknown export format {fmt!r}; expected one of {EXPORT_FORMATS}")
    c = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    if body_model is None:
        from aistpp.smpl import load_body_model

        body_model = load_body_model(None)
    from aistpp.naming import check_sequence_name

    names = [check_sequence_name(s, c.root) for s in (sequences or c.sequences())]  # names become file names
    if progress:
        from aistpp.progress import tqdm

        names = tqdm(names, desc=f"export {fmt}", unit="seq")
    out_dir = Path(out_dir)
    n = 0
    for seq in names:
        stored = set(c.fields(seq))
        if "smpl/poses" not in stored:
            log.warning("%s has no SMPL motion; not exported as %s", seq, fmt)
            continue
        r = c.read(seq, ("smpl/poses", "smpl/trans", "smpl/scaling"))
        fps = float(c.attrs(seq).get("fps", 60.0) or 60.0)
        motion = {"smpl_poses": r["smpl/poses"], "smpl_trans": r["smpl/trans"], "smpl_scaling": r["smpl/scaling"]}
        export_motion(fmt, out_dir / f"{seq}{export_suffix(fmt)}", motion, body_model, fps=fps, **options)
        n += 1
    return n
