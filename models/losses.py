"""Losses of the eyemotion models.

- Gradient reversal and the modality-adversarial loss of EMERT's MAFD (002_cbeb04dbce786b8c.txt, Sec. IV,
  Eq. 1), and EMERT's objective alpha * L_adv + beta * (L_e + L_f) with alpha = 0.3, beta = 0.1.
- Intra- and inter-modal triplet losses with hardest positive / hardest negative mining
  (000_e9deb5c9c21c243c.txt, Sec. 3.3, Eq. 1-3) and the full crossmodal objective
  alpha * L_triplet + CE(A) + CE(V) with alpha = 0.1 (001_8cd198317e00f0b1.txt, Sec. 3.5.3, Eq. 3.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

EMERT_ALPHA = 0.3  # weight of L_adv, 002 Sec. IV
EMERT_BETA = 0.1  # weight of L_e + L_f, 002 Sec. IV
TRIPLET_ALPHA = 0.1  # weight of the triplet term, 001 Eq. 3.4


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.scale * grad, None


class GradientReversal(nn.Module):
    """Identity forward; multiplies the gradient by -scale backward (Ganin & Lempitsky's GRL, used by 002's MAFD)."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReverseGradient.apply(x, self.scale)


def modality_adversarial_loss(invariant_logits: torch.Tensor, specific_logits: torch.Tensor) -> torch.Tensor:
    """L_adv of MAFD (002, Eq. 1): the modality classifier D names the modality of each feature.

    Both inputs are D's logits, shape (batch, n_modalities, n_modalities), where row m holds the
    features of modality m. The invariant features reach D through the gradient reversal layer, so
    minimising this loss trains D while pushing MLP_c towards modality-invariant features; the
    specific features reach D directly and stay modality-specific. (Eq. 1 as printed weights the log
    term with the emotion labels; we use the usual modality cross-entropy of a domain classifier.)
    """
    n_mod = invariant_logits.shape[1]
    target = torch.arange(n_mod, device=invariant_logits.device).repeat(invariant_logits.shape[0])
    return (F.cross_entropy(invariant_logits.reshape(-1, n_mod), target)
            + F.cross_entropy(specific_logits.reshape(-1, n_mod), target))


@dataclass
class EmertTargets:
    er7: torch.Tensor  # (B,) int64
    er3: torch.Tensor  # (B,) int64
    valence_arousal: torch.Tensor  # (B, 2) float in [-1, 1]
    fer7: torch.Tensor  # (B,) int64; -1 = no FER label (no face in the sample): left out of L_f


def emert_loss(out, targets: EmertTargets, alpha: float = EMERT_ALPHA, beta: float = EMERT_BETA
               ) -> dict[str, torch.Tensor]:
    """alpha * L_adv + beta * (L_e + L_f) (002, Sec. IV, Eq. 3-4): CE for the classes, Huber for V/A.

    `out` is an `EmertOutput`. L_e sums the 7-class and 3-class CE and the valence/arousal Huber loss. L_f
    is the CE of the FER head over the samples that have an FER label (fer7 >= 0; 0 when none has), so a
    sample without a face never teaches the FER head its ER label.
    """
    l_adv = modality_adversarial_loss(out.invariant_logits, out.specific_logits)
    rated = torch.isfinite(targets.valence_arousal)  # NaN: not rated, left out
    l_va = (F.huber_loss(out.valence_arousal[rated], targets.valence_arousal[rated]) if bool(rated.any())
            else out.valence_arousal.sum() * 0.0)
    l_e = F.cross_entropy(out.er7, targets.er7) + F.cross_entropy(out.er3, targets.er3) + l_va
    has_face = targets.fer7 >= 0
    l_f = (F.cross_entropy(out.fer7[has_face], targets.fer7[has_face]) if bool(has_face.any())
           else out.fer7.sum() * 0.0)
    total = alpha * l_adv + beta * (l_e + l_f)
    return {"total": total, "adv": l_adv.detach(), "er": l_e.detach(), "fer": l_f.detach()}


def hardest_pairs(dist: torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch-hard mining on a distance matrix dist[i, j] = d(a_i, b_j) (000, Sec. 3.3.1).

    For each anchor i: the hardest positive is the farthest b_j with the same label, the hardest
    negative the closest b_j with another label. Returns (positive index, negative index, valid), where
    valid is False for anchors that have no positive or no negative in the batch.
    """
    same = labels_a[:, None] == labels_b[None, :]
    neg_inf = torch.finfo(dist.dtype).min
    pos_idx = torch.where(same, dist, torch.full_like(dist, neg_inf)).argmax(dim=1)
    neg_idx = torch.where(~same, dist, torch.full_like(dist, -neg_inf)).argmin(dim=1)
    valid = same.any(dim=1) & (~same).any(dim=1)
    return pos_idx, neg_idx, valid


def _triplet(dist: torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor, margin: float | None) -> torch.Tensor:
    pos_idx, neg_idx, valid = hardest_pairs(dist.detach(), labels_a, labels_b)
    rows = torch.arange(dist.shape[0], device=dist.device)
    diff = dist[rows, pos_idx] - dist[rows, neg_idx]
    if margin is not None:
        diff = F.relu(diff + margin)
    return (diff * valid).sum()


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Euclidean distance with a safe gradient at 0 (the diagonal of an intra-modal matrix)
    sq = (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)
    return torch.sqrt(sq + 1e-12)


def intra_modal_triplet(emb: torch.Tensor, labels: torch.Tensor, margin: float | None = None) -> torch.Tensor:
    """L_intra(A) (000, Eq. 1): sum over anchors of d(e, e+) - d(e, e-) within one modality.

    `margin` None keeps Eq. 1 as printed (the embeddings are bounded, so it is bounded below); a float
    uses the hinge max(0, d+ - d- + margin).
    """
    return _triplet(_distances(emb, emb), labels, labels, margin)


def inter_modal_triplet(emb_a: torch.Tensor, emb_b: torch.Tensor, labels: torch.Tensor,
                        margin: float | None = None) -> torch.Tensor:
    """L_inter(AB) (000, Eq. 2): anchors from A, positives and negatives from B (row i of A and B is one window)."""
    return _triplet(_distances(emb_a, emb_b), labels, labels, margin)


def crossmodal_triplet(emb_a: torch.Tensor, emb_v: torch.Tensor, labels: torch.Tensor,
                       margin: float | None = None) -> torch.Tensor:
    """L_triplet = L_intra(A) + L_intra(V) + L_inter(AV) (000, Eq. 3)."""
    return (intra_modal_triplet(emb_a, labels, margin) + intra_modal_triplet(emb_v, labels, margin)
            + inter_modal_triplet(emb_a, emb_v, labels, margin))
