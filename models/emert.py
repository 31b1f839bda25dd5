"""EMERT: the eye-behaviour-based multimodal emotion recognition Transformer (002_cbeb04dbce786b8c.txt, Sec. IV).

- MFE: face embeddings (the face model already gives a 128-d embedding per frame, standing in for
  the paper's pre-trained ResNet) go through a linear projection; eye-movement samples and flattened
  fixation-map slices each go through an LSTM. All three become token sequences of width `d_model`.
  Eye input (`EyeEncoding`): the continuous eyemotion_gaze channels are z-scored, with pupil fluctuation
  in place of the pupil diameter (002 Sec. III-A-3, footnote 3: `pupil` and `pupil_raw` are left out);
  the categorical channels are not treated as numbers: the event code becomes a one-hot vector over
  `streams.EVENT_CODES` and the validity bitmask its bits (`streams.GAZE_VALIDITY_BITS`). This happens
  inside the graph, so the model input stays the raw 14-channel eyemotion_gaze sample.
- MAFD: one shared modality-invariant MLP_c (C_v, C_e, C_g) and three modality-specific MLPs
  (P_v, P_e, P_g), each two layers. A modality discriminator D sees the invariant features through a
  gradient reversal layer and the specific ones directly (loss in `losses.modality_adversarial_loss`).
- EMT: Transformer blocks where the invariant tokens are the queries and the specific tokens the keys
  and values (Eq. 2); the mean of the output tokens is X_fu. 002 says it follows "the typical
  formulation of the Transformer structure", so each block is a standard decoder block: self-attention
  over the query tokens (the three modalities' invariant features attend to each other), then the
  cross-attention of Eq. 2, then a feed-forward layer.
- Heads: an ER head (7-class and 3-class logits, valence and arousal in [-1, 1]) and an FER head
  (7-class logits), each a 2-layer MLP. 002 (Sec. III-B-1) also annotates 3-class FER, FER valence /
  arousal and expression intensity. Our FER labels are the face model's 7-class auto-annotation
  (`models.sessions_dataset`), which has no valence, arousal or intensity, so there is nothing to train
  such heads on; a 3-class FER label would be a fixed function of the 7-class one, so the 3-class FER
  figure is read from the FER head by summing its probabilities per coarse class (`models.train`).

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
from eyemotion.streams import EVENT_CODES, GAZE_VALIDITY_BITS

MODALITIES = ("face", "eye", "fixation")
#: eyemotion_gaze channels fed as z-scored numbers (pupil fluctuation replaces the pupil diameter, 002 fn. 3)
EYE_CONTINUOUS: tuple[str, ...] = tuple(c for c in shapes.GAZE_CHANNELS
                                        if c not in ("pupil", "pupil_raw", "event", "validity"))


@dataclass(frozen=True)
class EmertConfig:
    d_model: int = 128
    heads: int = 4
    layers: int = 2
    ff_dim: int = 256
    dropout: float = 0.1
    grl_scale: float = 1.0
    self_attention: bool = True  # decoder-style EMT block (see the module docstring)
    # categorical eye channels, fixed when the model is built (read from the stream contract)
    event_codes: int = max(EVENT_CODES.values()) + 1  # one-hot width of `event`
    validity_bits: int = max(GAZE_VALIDITY_BITS.values()).bit_length()  # bits of `validity` used

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


class Attention(nn.Module):
    """Multi-head scaled dot-product attention of queries over keys/values (plain ops, see the module docstring)."""

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        if d_model % heads:
            raise ValueError("d_model must be divisible by heads")
        self.heads = heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)
        self.scale = (d_model // heads) ** -0.5

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        dh = query.shape[-1] // self.heads
        q = self.q(query).unflatten(-1, (self.heads, dh)).transpose(1, 2)  # B, H, Tq, dh
        k, v = self.kv(memory).chunk(2, dim=-1)
        k = k.unflatten(-1, (self.heads, dh)).transpose(1, 2)
        v = v.unflatten(-1, (self.heads, dh)).transpose(1, 2)
        att = self.drop(torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1))
        return self.out((att @ v).transpose(1, 2).flatten(-2))  # B, Tq, D


class EmtBlock(nn.Module):
    """Post-norm Transformer decoder block: self-attention of the queries (optional), cross-attention of the
    queries over the memory (002 Eq. 2), then a feed-forward layer."""

    def __init__(self, d_model: int, heads: int, ff_dim: int, dropout: float, self_attention: bool = True):
        super().__init__()
        self.self_att = Attention(d_model, heads, dropout) if self_attention else None
        self.norm0 = nn.LayerNorm(d_model) if self_attention else None
        self.cross_att = Attention(d_model, heads, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = mlp(d_model, ff_dim, d_model, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        if self.self_att is not None:
            query = self.norm0(query + self.drop(self.self_att(query, query)))
        x = self.norm1(query + self.drop(self.cross_att(query, memory)))
        return self.norm2(x + self.drop(self.ff(x)))


class EyeEncoding(nn.Module):
    """eyemotion_gaze samples (B, T, 14), raw and z-scored -> model features: the z-scored continuous
    channels (`EYE_CONTINUOUS`), a one-hot event code and the validity bits (0/1) of the raw samples. NaN
    becomes 0 everywhere (the training mean; no event; no bit)."""

    def __init__(self, event_codes: int, validity_bits: int):
        super().__init__()
        self.register_buffer("continuous", torch.tensor([shapes.GAZE_CHANNELS.index(c) for c in EYE_CONTINUOUS]),
                             persistent=False)
        self.event = shapes.GAZE_CHANNELS.index("event")
        self.validity = shapes.GAZE_CHANNELS.index("validity")
        self.register_buffer("codes", torch.arange(event_codes, dtype=torch.float32), persistent=False)
        self.register_buffer("powers", 2.0 ** torch.arange(validity_bits, dtype=torch.float32), persistent=False)
        self.dim = len(EYE_CONTINUOUS) + event_codes + validity_bits

    def forward(self, eye: torch.Tensor, eye_z: torch.Tensor) -> torch.Tensor:
        cont = eye_z.index_select(-1, self.continuous)
        event = eye[..., self.event:self.event + 1]
        one_hot = (event == self.codes).to(eye.dtype)  # NaN or an unknown code: all 0
        validity = eye[..., self.validity:self.validity + 1]
        validity = torch.where(torch.isnan(validity), torch.zeros_like(validity), validity)
        bits = torch.remainder(torch.floor(validity / self.powers), 2.0)
        return torch.cat([cont, one_hot, bits], dim=-1)


class Emert(nn.Module):
    """EMERT on raw features; see the module docstring. Inputs: face (B, Tv, 128), eye (B, Te, C_gaze),
    fixation (B, Tg, 18, 32). 002 (Sec. V-A-2) samples Tv = 8, Te = Tg = 32 evenly from a whole clip (our
    training and evaluation protocol); the live node takes the same counts from a 4-s sliding window (a
    stated deviation, `inference.features.builders`). Any lengths >= 1 work."""

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
        self.eye_encoding = EyeEncoding(config.event_codes, config.validity_bits)
        self.eye_lstm = nn.LSTM(self.eye_encoding.dim, d, batch_first=True)
        self.fixation_lstm = nn.LSTM(shapes.FIXATION_ROWS * shapes.FIXATION_COLS, d, batch_first=True)
        # MAFD
        self.invariant = mlp(d, d, d, config.dropout)  # MLP_c, shared by the three modalities
        self.specific = nn.ModuleList([mlp(d, d, d, config.dropout) for _ in MODALITIES])  # MLP_v, MLP_e, MLP_g
        self.grl = GradientReversal(config.grl_scale)
        self.discriminator = mlp(d, d // 2, len(MODALITIES))
        self.modality_embedding = nn.Parameter(torch.zeros(len(MODALITIES), d))
        nn.init.normal_(self.modality_embedding, std=0.02)
        # EMT and heads
        self.blocks = nn.ModuleList([EmtBlock(d, config.heads, config.ff_dim, config.dropout, config.self_attention)
                                     for _ in range(config.layers)])
        self.er_head = mlp(d, d, shapes.N_CLASSES + len(shapes.CLASSES_3) + 2, config.dropout)
        self.fer_head = mlp(d, d, shapes.N_CLASSES, config.dropout)

    def extract(self, face: torch.Tensor, eye: torch.Tensor, fixation: torch.Tensor) -> list[torch.Tensor]:
        """MFE: H_v, H_e, H_g, each (B, T_m, d_model)."""
        h_v = self.face_proj(self.face_norm(face))
        h_e, _ = self.eye_lstm(self.eye_encoding(eye, self.eye_norm(eye)))
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
