"""EMERT: the eye-behaviour-based multimodal emotion recognition Transformer (002_cbeb04dbce786b8c.txt, Sec. IV).

- MFE: face embeddings (the face model already gives a 128-d embedding per frame, standing in for
  the paper's pre-trained ResNet) go through a linear projection; eye-movement samples and flattened
  fixation-map slices each go through an LSTM. All three become token sequences of width `d_model`.
- MAFD: one shared modality-invariant MLP_c (C_v, C_e, C_g) and three modality-specific MLPs
  (P_v, P_e, P_g), each two layers. A modality discriminator D sees the invariant features through a
  gradient reversal layer and the specific ones directly (loss in `losses.modality_adversarial_loss`).
- EMT: Transformer blocks where the invariant tokens are the queries and the specific tokens the keys
  and values (Eq. 2); the mean of the output tokens is X_fu.
- Heads: an ER head (7-class and 3-class logits, valence and arousal in [-1, 1]) and an FER head
  (7-class logits), each a 2-layer MLP.

The attention is written out with plain tensor ops so the ONNX graph keeps dynamic batch and sequence
lengths (no fused `nn.MultiheadAttention` fast path, no `nn.TransformerEncoder`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from eyemotion.models import shapes
from eyemotion.models.layers import FeatureNorm, mlp
from eyemotion.models.losses import GradientReversal

MODALITIES = ("face", "eye", "fixation")


@dataclass(frozen=True)
class EmertConfig:
    d_model: int = 128
    heads: int = 4
    layers: int = 2
    ff_dim: int = 256
    dropout: float = 0.1
    grl_scale: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EmertOutput:
    er7: torch.Tensor  # (B, 7) logits
    er3: torch.Tensor  # (B, 3) logits
    valence_arousal: torch.Tensor  # (B, 2) in [-1, 1]
    fer7: torch.Tensor  # (B, 7) logits
    invariant_logits: torch.Tensor  # (B, 3, 3) modality discriminator on GRL(C)
    specific_logits: torch.Tensor  # (B, 3, 3) modality discriminator on P


class CrossAttentionBlock(nn.Module):
    """Post-norm Transformer block: multi-head attention of queries over keys/values, then a feed-forward."""

    def __init__(self, d_model: int, heads: int, ff_dim: int, dropout: float):
        super().__init__()
        if d_model % heads:
            raise ValueError("d_model must be divisible by heads")
        self.heads = heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = mlp(d_model, ff_dim, d_model, dropout)
        self.drop = nn.Dropout(dropout)
        self.scale = (d_model // heads) ** -0.5

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        dh = query.shape[-1] // self.heads
        q = self.q(query).unflatten(-1, (self.heads, dh)).transpose(1, 2)  # B, H, Tq, dh
        k, v = self.kv(memory).chunk(2, dim=-1)
        k = k.unflatten(-1, (self.heads, dh)).transpose(1, 2)
        v = v.unflatten(-1, (self.heads, dh)).transpose(1, 2)
        att = self.drop(torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1))
        ctx = (att @ v).transpose(1, 2).flatten(-2)  # B, Tq, D
        x = self.norm1(query + self.drop(self.out(ctx)))
        return self.norm2(x + self.drop(self.ff(x)))


class Emert(nn.Module):
    """EMERT on raw window features; see the module docstring. Inputs: face (B, Tv, 128), eye (B, Te, C_gaze),
    fixation (B, Tg, 18, 32); the paper's window has Tv = 8, Te = Tg = 32 but any lengths >= 1 work."""

    def __init__(self, config: EmertConfig = EmertConfig(), normalisation: dict | None = None):
        super().__init__()
        self.config = config
        d = config.d_model
        norm = normalisation or {}
        self.face_norm = FeatureNorm(shapes.FACE_DIM, **norm.get("face", {}))
        self.eye_norm = FeatureNorm(shapes.EYE_DIM, **norm.get("eye", {}))
        self.fixation_norm = FeatureNorm(1, **norm.get("fixation", {}))
        # MFE
        self.face_proj = nn.Sequential(nn.Linear(shapes.FACE_DIM, d), nn.GELU())
        self.eye_lstm = nn.LSTM(shapes.EYE_DIM, d, batch_first=True)
        self.fixation_lstm = nn.LSTM(shapes.FIXATION_ROWS * shapes.FIXATION_COLS, d, batch_first=True)
        # MAFD
        self.invariant = mlp(d, d, d, config.dropout)  # MLP_c, shared by the three modalities
        self.specific = nn.ModuleList([mlp(d, d, d, config.dropout) for _ in MODALITIES])  # MLP_v, MLP_e, MLP_g
        self.grl = GradientReversal(config.grl_scale)
        self.discriminator = mlp(d, d // 2, len(MODALITIES))
        self.modality_embedding = nn.Parameter(torch.zeros(len(MODALITIES), d))
        nn.init.normal_(self.modality_embedding, std=0.02)
        # EMT and heads
        self.blocks = nn.ModuleList([CrossAttentionBlock(d, config.heads, config.ff_dim, config.dropout)
                                     for _ in range(config.layers)])
        self.er_head = mlp(d, d, shapes.N_CLASSES + len(shapes.CLASSES_3) + 2, config.dropout)
        self.fer_head = mlp(d, d, shapes.N_CLASSES, config.dropout)

    def extract(self, face: torch.Tensor, eye: torch.Tensor, fixation: torch.Tensor) -> list[torch.Tensor]:
        """MFE: H_v, H_e, H_g, each (B, T_m, d_model)."""
        h_v = self.face_proj(self.face_norm(face))
        h_e, _ = self.eye_lstm(self.eye_norm(eye))
        fix = self.fixation_norm(fixation.unsqueeze(-1)).flatten(2)  # B, Tg, rows*cols
        h_g, _ = self.fixation_lstm(fix)
        return [h_v, h_e, h_g]

    def forward(self, face: torch.Tensor, eye: torch.Tensor, fixation: torch.Tensor) -> EmertOutput:
        feats = self.extract(face, eye, fixation)
        inv = [self.invariant(h) for h in feats]  # C_v, C_e, C_g
        spec = [m(h) for m, h in zip(self.specific, feats)]  # P_v, P_e, P_g
        inv_pooled = torch.stack([c.mean(dim=1) for c in inv], dim=1)  # B, 3, D
        spec_pooled = torch.stack([p.mean(dim=1) for p in spec], dim=1)
        invariant_logits = self.discriminator(self.grl(inv_pooled))
        specific_logits = self.discriminator(spec_pooled)
        query = torch.cat([c + self.modality_embedding[i] for i, c in enumerate(inv)], dim=1)
        memory = torch.cat([p + self.modality_embedding[i] for i, p in enumerate(spec)], dim=1)
        for block in self.blocks:
            query = block(query, memory)
        fused = query.mean(dim=1)  # X_fu
        er = self.er_head(fused)
        n7, n3 = shapes.N_CLASSES, len(shapes.CLASSES_3)
        return EmertOutput(
            er7=er[:, :n7], er3=er[:, n7:n7 + n3], valence_arousal=torch.tanh(er[:, n7 + n3:]),
            fer7=self.fer_head(fused), invariant_logits=invariant_logits, specific_logits=specific_logits,
        )

    def normalisation(self) -> dict[str, dict[str, list[float]]]:
        return {"face": self.face_norm.stats(), "eye": self.eye_norm.stats(), "fixation": self.fixation_norm.stats()}


class EmertInference(nn.Module):
    """The exported graph: raw window features in, probabilities and valence/arousal out."""

    input_names = ("face", "eye", "fixation")
    output_names = ("er7_probs", "er3_probs", "valence_arousal", "fer7_probs")

    def __init__(self, model: Emert):
        super().__init__()
        self.model = model

    def forward(self, face: torch.Tensor, eye: torch.Tensor, fixation: torch.Tensor):
        out = self.model(face, eye, fixation)
        return (torch.softmax(out.er7, -1), torch.softmax(out.er3, -1), out.valence_arousal,
                torch.softmax(out.fer7, -1))
