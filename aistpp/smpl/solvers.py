"""The SMPL fit's two solvers on one block of frames (see :mod:`aistpp.smpl.fit`):

1. per-frame Levenberg-Marquardt (all frames batched; analytic Jacobians of the kinematic chain, 75 x 75 solves per
   frame), iteratively reweighted for the robust loss, with the scale and translations updated in closed form
   between steps -- everything but the temporal term, which couples frames;
2. L-BFGS (strong Wolfe) on the full energy with the temporal term, scale fixed (smoothing would shrink it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

from aistpp.smpl.energy import Problem, prior_terms
from aistpp.smpl.jacobian import keypoints_and_jacobian

if TYPE_CHECKING:  # annotations only: the config is defined with the public API in aistpp.smpl.fit
    from aistpp.smpl.fit import FitConfig

log = logging.getLogger(__name__)


def levenberg_marquardt(layer, target, weights, config: FitConfig, scale, x, fit_scale, iterations):
    """Per-frame Levenberg-Marquardt with analytic Jacobians (frames are independent given the scale; no
    smoothness here), iteratively reweighted for the Geman-McClure loss; before each step the scale and the
    translations get their closed-form weighted least-squares update. x (n, 75) = [pose, trans / scale] ->
    (x, scale)."""
    n = x.shape[0]
    norm = float((weights.sum() / n).clamp_min(1e-9))
    sig2 = config.robust_scale_cm ** 2
    mu = torch.full((n, 1), 1e-3, dtype=x.dtype, device=x.device)
    eye3 = torch.eye(3, dtype=x.dtype, device=x.device)

    def data_cost(xx, w_fixed, s):
        kp = layer.keypoints(xx[:, :72])
        r2 = ((s * (kp + xx[:, None, 72:]) - target) ** 2).sum(-1)
        return (w_fixed * r2).sum(-1) / norm

    for it in range(iterations):
        with torch.no_grad():
            kp, jac = keypoints_and_jacobian(layer, x[:, :72])
            r2 = ((scale * (kp + x[:, None, 72:]) - target) ** 2).sum(-1)
            w_irls = weights * sig2 ** 2 / (sig2 + r2) ** 2                               # (n, 17)
            if fit_scale:  # closed form: min over s, u_t of sum w |s (m + u_t) - y|^2
                wt = w_irls.sum(1, keepdim=True).clamp_min(1e-12)
                m_bar = (w_irls[..., None] * kp).sum(1) / wt
                y_bar = (w_irls[..., None] * target).sum(1) / wt
                dm, dy = kp - m_bar[:, None], target - y_bar[:, None]
                scale = float((w_irls[..., None] * dm * dy).sum() / (w_irls[..., None] * dm * dm).sum().clamp_min(1e-12))
                seen = wt[:, 0] > 1e-9            # frames without data keep their translation
                x[seen, 72:] = y_bar[seen] / scale - m_bar[seen]
            res = scale * (kp + x[:, None, 72:]) - target                                  # (n, 17, 3)
            jd = torch.cat([jac, eye3.expand(n, 17, 3, 3)], dim=-1) * scale                # (n, 17, 3, 75)
            wj = (w_irls / norm)[..., None, None] * jd
            jtj = torch.einsum("nkci,nkcj->nij", wj, jd)
            g = torch.einsum("nkci,nkc->ni", wj, res)
            p_cost, p_grad, p_diag = prior_terms(x, config)
            cost = (w_irls * (res ** 2).sum(-1)).sum(-1) / norm + p_cost
            h = jtj + torch.diag_embed(0.5 * p_diag)
            g = g + 0.5 * p_grad
            damp = mu * (torch.diagonal(h, dim1=1, dim2=2) + 1e-6)
            step = torch.linalg.solve(h + torch.diag_embed(damp), -g)
            x_new = x + step
            new_cost = data_cost(x_new, w_irls, scale) + prior_terms(x_new, config)[0]
            better = new_cost < cost
            x = torch.where(better[:, None], x_new, x)
            mu = torch.where(better[:, None], mu * 0.3, mu * 10).clamp(1e-8, 1e8)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("LM %d: cost %.4f, accepted %d/%d, scale %.3f", it, float(cost.sum()),
                          int(better.sum()), n, scale)
    return x, scale


def _lbfgs(params, closure, iterations, history):
    if iterations <= 0:
        return
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=iterations, max_eval=int(iterations * 1.25) + 5,
                            history_size=history, tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")
    opt.step(closure)


def optimize_block(layer, target, weights, config: FitConfig, scale0, orient0, body0, trans0, fit_scale,
                    context=None, smooth=True, lm_data=None):
    """One block of frames: per-frame Levenberg-Marquardt (robust data + priors, closed-form scale) on ``lm_data``
    = (target, weights) (default the block's; the caller passes them with temporal spikes removed: per frame,
    nothing else tells a gross outlier from a pose), then L-BFGS on the full energy (adds the temporal term and the
    context). Returns (orient, body, trans cm, scale, world points (n, 29, 3) cm), detached."""
    dev, dt = layer.rest_joints.device, layer.rest_joints.dtype
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=dt, device=dev)  # noqa: E731
    target_t, weights_t = as_t(target), as_t(weights)
    lm_target, lm_weights = (target_t, weights_t) if lm_data is None else (as_t(lm_data[0]), as_t(lm_data[1]))
    x = torch.cat([as_t(orient0), as_t(body0), as_t(trans0) / scale0], dim=1)
    x, scale = levenberg_marquardt(layer, lm_target, lm_weights, config, scale0, x, fit_scale,
                                    config.lm_iterations)
    orient = x[:, :3].clone().requires_grad_(True)
    body = x[:, 3:72].clone().requires_grad_(True)
    trans_u = x[:, 72:].clone().requires_grad_(True)
    z = torch.zeros(1, dtype=dt, device=dev)  # the scale stays at LM's estimate: smoothing would shrink it
    prob = Problem(layer, target_t, weights_t, config, scale, context=context, smooth=smooth)
    params = [orient, body, trans_u]

    def closure():
        torch.set_grad_enabled(True)
        for p in params:
            p.grad = None
        e = prob.energy(orient, body, trans_u, z)
        e.backward()
        return e

    _lbfgs(params, closure, config.iterations, config.lbfgs_history)
    with torch.no_grad():
        pts = prob.world(orient, body, trans_u, z)
        new_scale = float(prob.scale(z))
    return orient.detach(), body.detach(), (trans_u * scale).detach(), new_scale, pts

