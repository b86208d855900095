"""The SMPL fit's energy (see :mod:`aistpp.smpl.fit` for the model), in the two forms its solvers use.

Summed over frames t (x = model points, y = keypoints, both cm)::

    E = sum_t [ sum_k w_tk rho(|x_tk - y_tk|) / mean_t(sum_k w_tk)          robust data term (Geman-McClure)
              + smooth_weight * mean_29 points |x_t+1 - 2 x_t + x_t-1|^2    24 joints + 5 face points
              + pose_prior_weight * |body_pose_t|^2                           (rad^2)
              + hinge_weight * (knee twist/ab-duction^2 + elbow ab-duction^2)
              + limit_weight * (knee / elbow hyper-extension^2) ]

:class:`Problem` evaluates all of it on torch tensors for autograd (the L-BFGS stage); :func:`prior_terms` gives the
per-frame prior cost with its gradient and Gauss-Newton diagonal (the Levenberg-Marquardt stage, whose data term is
built from :func:`aistpp.smpl.jacobian.keypoints_and_jacobian`). The weights come from
:class:`aistpp.smpl.fit.FitConfig`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from aistpp.smpl.joints import COCO17_FROM_SMPL

if TYPE_CHECKING:  # annotations only: the config is defined with the public API in aistpp.smpl.fit
    from aistpp.smpl.fit import FitConfig


def _hinge_and_limits(body_pose: torch.Tensor):
    """(n, 69) -> (hinge penalty (n,), limit penalty (n,)) in rad^2. Knees (SMPL 4, 5) flex about +x, elbows
    (18, 19) about -y (left) / +y (right)."""
    p = body_pose.reshape(-1, 23, 3)
    knees = p[:, [3, 4]]                   # joints 4, 5 (body_pose index = joint - 1)
    elbows = p[:, [17, 18]]                # joints 18, 19
    hinge = (knees[..., 1:] ** 2).sum((-1, -2)) + (elbows[..., 2] ** 2).sum(-1)
    limit = (torch.relu(-knees[..., 0]) ** 2).sum(-1) + torch.relu(elbows[:, 0, 1]) ** 2 \
        + torch.relu(-elbows[:, 1, 1]) ** 2
    return hinge, limit


class Problem:
    """Energy over a block of n frames, summed over frames (so each frame's parameters see O(1) curvature);
    ``context`` = fixed leading frames (world points, cm) for the smooth term. The scale is
    ``scale0 * exp(z / sqrt(n))`` (z = 0 keeps it fixed, as the L-BFGS stage does)."""

    def __init__(self, layer, target, weights, config: FitConfig, scale0: float, context=None, smooth=True):
        self.layer = layer
        self.target = target
        self.weights = weights
        self.n = target.shape[0]
        self.norm = (weights.sum() / self.n).clamp_min(1e-9)       # mean weight sum per frame
        self.config = config
        self.scale0 = scale0
        self.context = context
        self.smooth = smooth and config.smooth_weight > 0
        self.index = torch.as_tensor(COCO17_FROM_SMPL, device=target.device)

    def scale(self, z):
        return self.scale0 * torch.exp(z / self.n ** 0.5)

    def world(self, orient, body, trans_u, z):
        """World points (n, 29, 3) cm: 24 joints then the 5 face vertices."""
        joints, face = self.layer(torch.cat([orient, body], dim=1))
        return torch.cat([joints, face], dim=1) * self.scale(z) + (self.scale0 * trans_u)[:, None]

    def energy(self, orient, body, trans_u, z, rigid=False):
        pts = self.world(orient, body, trans_u, z)
        r2 = ((pts[:, self.index] - self.target) ** 2).sum(-1)
        sig2 = self.config.robust_scale_cm ** 2
        e = (self.weights * (sig2 * r2 / (sig2 + r2))).sum() / self.norm
        if self.smooth:
            seq = pts if self.context is None else torch.cat([self.context, pts], dim=0)
            if len(seq) >= 3:
                acc = seq[2:] - 2 * seq[1:-1] + seq[:-2]
                e = e + self.config.smooth_weight * (acc ** 2).sum(-1).mean(-1).sum()
        if not rigid:
            e = e + self.config.pose_prior_weight * (body ** 2).sum()
            hinge, limit = _hinge_and_limits(body)
            e = e + self.config.hinge_weight * hinge.sum() + self.config.limit_weight * limit.sum()
        return e


_KNEE_TWIST = [3 * 4 + 1, 3 * 4 + 2, 3 * 5 + 1, 3 * 5 + 2]    # pose indices (72-vector): knee y, z
_ELBOW_ABD = [3 * 18 + 2, 3 * 19 + 2]                            # elbow z
# (pose index, sign): penalty relu(sign * angle): knee x < 0, left elbow y > 0, right elbow y < 0 are hyper-extension
_LIMITS = [(3 * 4, -1.0), (3 * 5, -1.0), (3 * 18 + 1, 1.0), (3 * 19 + 1, -1.0)]


def prior_terms(x: torch.Tensor, config: FitConfig):
    """Per-frame prior cost (n,), gradient (n, 75) and Gauss-Newton diagonal (n, 75) of the pose priors
    (L2 on body pose, hinge, limits) for x = [pose (72), trans (3)]."""
    grad = torch.zeros_like(x)
    diag = torch.zeros_like(x)
    body = x[:, 3:72]
    cost = config.pose_prior_weight * (body ** 2).sum(-1)
    grad[:, 3:72] += 2 * config.pose_prior_weight * body
    diag[:, 3:72] += 2 * config.pose_prior_weight
    h = x[:, _KNEE_TWIST + _ELBOW_ABD]
    cost = cost + config.hinge_weight * (h ** 2).sum(-1)
    grad[:, _KNEE_TWIST + _ELBOW_ABD] += 2 * config.hinge_weight * h
    diag[:, _KNEE_TWIST + _ELBOW_ABD] += 2 * config.hinge_weight
    for idx, sign in _LIMITS:
        v = torch.relu(sign * x[:, idx])
        cost = cost + config.limit_weight * v ** 2
        grad[:, idx] += 2 * config.limit_weight * sign * v
        diag[:, idx] += 2 * config.limit_weight * (v > 0).to(x.dtype)
    return cost, grad, diag

