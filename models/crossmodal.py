"""Gaze-enhanced crossmodal emotion embeddings (000_e9deb5c9c21c243c.txt, Sec. 3 and 4.1; 001_8cd198317e00f0b1.txt, Sec. 3.4).

A visual stream (face embeddings fused with gaze statistics) and an audio stream (eGeMAPS functionals)
each map a sequence to an embedding sequence of width E = 120 (GRU encoders with 120 units, 000 Sec.
4.1). The embeddings feed one shared classifier (a GRU with 120 units and a linear layer) that does not
know the modality, so at test time either modality alone gives a prediction. Variants (000 Sec. 3.1.1,
3.5.1, Table 2):

- ``early-windowed``: face and windowed gaze statistics concatenated per frame, one GRU encoder.
- ``model-windowed``: a face GRU and a gaze GRU; their outputs concatenated per frame (2E) and projected to E.
- ``model-averaged``: as model-level fusion, with the gaze statistics averaged over the utterance first.
- ``no-gaze``: the EmoBed ablation, face only.

The embedding sequence is mean-pooled into one vector per window for the triplet losses
(`losses.crossmodal_triplet`). Joint prediction (001 Sec. 3.4): a small head on the concatenated pooled
audio and visual embeddings. Embeddings are squashed into (-1, 1) (GRU outputs already are; the
model-level projection ends with tanh), which keeps the margin-free triplet loss of 000 Eq. 1 bounded.

Deviations, stated: the visual input is the 128-d embedding of our face model (the FER2013 mini-Xception of
`models/face_fer.onnx`), not 000's VGG-Face features (Sec. 3.5.2); the audio input is one eGeMAPS vector of
the voiced frames per step (`inference.features.audio`: utterance-level for corpora, the newest 3-s window
live) rather than a fixed grid of sub-windows; 001's self-supervised audio-visual pre-training (L3-Net /
AVE-Net correspondence, 001 Sec. 3.1-3.3) is not implemented: the encoders start from random weights. The
model trains on one modality alone when a corpus has only that (`models.train`: per-row modality masks), so
the shipped audio graph is trained on real speech (RAVDESS) while the visual and joint ones come from
simulated sessions (see their cards).

Ensembles (`CrossmodalEnsemble`, `CrossmodalConfig.members` > 1): K such models trained from different random
initialisations and batch orders, whose class probabilities are averaged (deep ensembles: Lakshminarayanan et
al. 2017, NeurIPS, Sec. 2.4; the variance a single small network has on a small corpus averages out). The
exported graphs average the members inside, so the shipped model is the evaluated one. Wide path
(`CrossmodalConfig.wide`, Cheng et al. 2016, "Wide & deep learning", Sec. 3): a linear layer on each branch's
normalised inputs averaged over time adds its logits to the shared classifier's, so a branch contains the linear
baseline's hypothesis class (a deviation from 000, whose classifier sees only the embeddings; the embeddings
and the triplet loss are unchanged).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from eyemotion.models import shapes
from eyemotion.models.layers import FeatureNorm

VARIANTS = ("early-windowed", "model-windowed", "model-averaged", "no-gaze")


@dataclass(frozen=True)
class CrossmodalConfig:
    variant: str = "model-averaged"  # best visual F1 with triplet training in 000 Table 2
    units: int = shapes.CROSSMODAL_UNITS
    dropout: float = 0.1
    members: int = 1  # > 1: an ensemble of that many models whose probabilities are averaged
    wide: bool = False  # a linear path beside each branch (wide & deep): logits from the time-averaged inputs
    classes: tuple[int, ...] | None = None  # the classes of the training data; the others get probability 0

    def __post_init__(self) -> None:
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
            if not self.classes or not all(0 <= c < shapes.N_CLASSES for c in self.classes):
                raise ValueError(f"classes must be indices 0-{shapes.N_CLASSES - 1}, not {self.classes}")
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown crossmodal variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if self.members < 1:
            raise ValueError(f"an ensemble needs at least one member, not {self.members}")

    @property
    def uses_gaze(self) -> bool:
        return self.variant != "no-gaze"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CrossmodalOutput:
    visual_logits: torch.Tensor | None
    audio_logits: torch.Tensor | None
    joint_logits: torch.Tensor | None
    visual_embedding: torch.Tensor | None  # (B, E), pooled
    audio_embedding: torch.Tensor | None


class Crossmodal(nn.Module):
    """See the module docstring. Inputs are raw features (normalised inside): visual_face (B, Tv, 128),
    visual_gaze (B, Tv, 103), audio (B, Ta, 88); Tv and Ta are free and may differ."""

    def __init__(self, config: CrossmodalConfig = CrossmodalConfig(), normalisation: dict | None = None):
        super().__init__()
        self.config = config
        e = config.units
        norm = normalisation or {}
        self.face_norm = FeatureNorm(shapes.FACE_DIM, **norm.get("visual_face", {}))
        self.gaze_norm = FeatureNorm(shapes.GAZE_STATS_DIM, **norm.get("visual_gaze", {}))
        self.audio_norm = FeatureNorm(shapes.AUDIO_DIM, **norm.get("audio", {}))
        if config.variant == "early-windowed":
            self.face_gru = nn.GRU(shapes.FACE_DIM + shapes.GAZE_STATS_DIM, e, batch_first=True)
        else:
            self.face_gru = nn.GRU(shapes.FACE_DIM, e, batch_first=True)
        if config.variant.startswith("model-"):
            self.gaze_gru = nn.GRU(shapes.GAZE_STATS_DIM, e, batch_first=True)
            self.fusion = nn.Sequential(nn.Linear(2 * e, e), nn.Tanh())  # f_p: R^2E -> R^E
        self.audio_gru = nn.GRU(shapes.AUDIO_DIM, e, batch_first=True)
        self.drop = nn.Dropout(config.dropout)
        self.classifier_gru = nn.GRU(e, e, batch_first=True)  # shared, modality-agnostic
        self.classifier_out = nn.Linear(e, shapes.N_CLASSES)
        self.joint = nn.Sequential(nn.Linear(2 * e, e), nn.ReLU(), nn.Linear(e, shapes.N_CLASSES))
        # a class the training data never had cannot be predicted (its output was never trained): logit - 1e4
        offset = torch.zeros(shapes.N_CLASSES)
        if config.classes is not None:
            offset[[c for c in range(shapes.N_CLASSES) if c not in config.classes]] = -1e4
        self.register_buffer("class_offset", offset, persistent=False)
        if config.wide:
            self.audio_wide = nn.Linear(shapes.AUDIO_DIM, shapes.N_CLASSES)
            visual_dim = shapes.FACE_DIM + (shapes.GAZE_STATS_DIM if config.uses_gaze else 0)
            self.visual_wide = nn.Linear(visual_dim, shapes.N_CLASSES)

    @property
    def visual_inputs(self) -> tuple[str, ...]:
        return ("visual_face", "visual_gaze") if self.config.uses_gaze else ("visual_face",)

    def embed_visual(self, face: torch.Tensor, gaze: torch.Tensor | None = None) -> torch.Tensor:
        """Gaze-enhanced visual embedding sequence (B, Tv, E)."""
        face = self.face_norm(face)
        variant = self.config.variant
        if variant == "no-gaze":
            return self.face_gru(face)[0]
        if gaze is None:
            raise ValueError(f"the {variant} crossmodal model needs visual_gaze")
        gaze = self.gaze_norm(gaze)
        if variant == "early-windowed":
            return self.face_gru(torch.cat([face, gaze], dim=-1))[0]
        e_v = self.face_gru(face)[0]
        if variant == "model-averaged":
            e_g = self.gaze_gru(gaze.mean(dim=1, keepdim=True))[0].expand(-1, e_v.shape[1], -1)
        else:
            e_g = self.gaze_gru(gaze)[0]
        return self.fusion(torch.cat([e_v, e_g], dim=-1))

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio embedding sequence (B, Ta, E)."""
        return self.audio_gru(self.audio_norm(audio))[0]

    def classify(self, embedding_seq: torch.Tensor) -> torch.Tensor:
        """The shared classifier: 7-class logits from an embedding sequence of either modality."""
        out, _ = self.classifier_gru(self.drop(embedding_seq))
        return self.classifier_out(out[:, -1])

    def wide(self, modality: str, visual_face: torch.Tensor | None = None, visual_gaze: torch.Tensor | None = None,
             audio: torch.Tensor | None = None) -> torch.Tensor | None:
        """The linear path of `modality` ("audio" or "visual"; Cheng et al. 2016, wide & deep, Sec. 3): logits
        of a linear layer on the normalised inputs averaged over time, added to the shared classifier's, so the
        branch contains the linear baseline's hypothesis class. None when the model has none (`config.wide`)."""
        if not self.config.wide:
            return None
        if modality == "audio":
            return self.audio_wide(self.audio_norm(audio).mean(1))
        parts = [self.face_norm(visual_face).mean(1)]
        if self.config.uses_gaze:
            parts.append(self.gaze_norm(visual_gaze).mean(1))
        return self.visual_wide(torch.cat(parts, -1))

    def classify_joint(self, audio_pooled: torch.Tensor, visual_pooled: torch.Tensor) -> torch.Tensor:
        """Joint audio + visual prediction on the concatenated pooled embeddings (001 Sec. 3.4)."""
        return self.joint(torch.cat([audio_pooled, visual_pooled], dim=-1))

    def forward(self, visual_face: torch.Tensor | None = None, visual_gaze: torch.Tensor | None = None,
                audio: torch.Tensor | None = None) -> CrossmodalOutput:
        """Whatever modalities are given; the joint logits need both."""
        if visual_face is None and audio is None:
            raise ValueError("the crossmodal model needs visual_face or audio (or both)")
        v_logits = a_logits = j_logits = v_emb = a_emb = None
        if visual_face is not None:
            seq = self.embed_visual(visual_face, visual_gaze)
            v_logits, v_emb = self.classify(seq), seq.mean(dim=1)
            if self.config.wide:
                v_logits = v_logits + self.wide("visual", visual_face, visual_gaze)
        if audio is not None:
            seq = self.embed_audio(audio)
            a_logits, a_emb = self.classify(seq), seq.mean(dim=1)
            if self.config.wide:
                a_logits = a_logits + self.wide("audio", audio=audio)
        if v_emb is not None and a_emb is not None:
            j_logits = self.classify_joint(a_emb, v_emb)
        v_logits, a_logits, j_logits = (None if x is None else x + self.class_offset for x in (v_logits, a_logits, j_logits))
        return CrossmodalOutput(v_logits, a_logits, j_logits, v_emb, a_emb)

    def normalisation(self) -> dict[str, dict[str, list[float]]]:
        stats = {"visual_face": self.face_norm.stats(), "audio": self.audio_norm.stats()}
        if self.config.uses_gaze:
            stats["visual_gaze"] = self.gaze_norm.stats()
        return stats


class CrossmodalEnsemble(nn.Module):
    """`config.members` crossmodal models (trained separately, from different initialisations) whose class
    probabilities are averaged (Lakshminarayanan et al. 2017, Sec. 2.4). The logits it returns are the log of
    the mean probabilities, so a softmax of them gives the mean. The pooled embeddings are the first member's
    (each member has its own embedding space, so they cannot be averaged)."""

    def __init__(self, config: CrossmodalConfig, normalisation: dict | None = None):
        super().__init__()
        self.config = config
        single = replace(config, members=1)
        self.members = nn.ModuleList(Crossmodal(single, normalisation) for _ in range(config.members))

    @property
    def visual_inputs(self) -> tuple[str, ...]:
        return self.members[0].visual_inputs

    def forward(self, visual_face: torch.Tensor | None = None, visual_gaze: torch.Tensor | None = None,
                audio: torch.Tensor | None = None) -> CrossmodalOutput:
        outs = [m(visual_face, visual_gaze, audio) for m in self.members]

        def mean_log_prob(name: str) -> torch.Tensor | None:
            if getattr(outs[0], name) is None:
                return None
            probs = torch.stack([torch.softmax(getattr(o, name), -1) for o in outs]).mean(0)
            return torch.log(probs.clamp_min(1e-12))

        return CrossmodalOutput(mean_log_prob("visual_logits"), mean_log_prob("audio_logits"),
                                mean_log_prob("joint_logits"), outs[0].visual_embedding, outs[0].audio_embedding)

    def normalisation(self) -> dict[str, dict[str, list[float]]]:
        return self.members[0].normalisation()  # every member is built with the same training statistics


def build_crossmodal(config: CrossmodalConfig, normalisation: dict | None = None) -> nn.Module:
    """One model, or an ensemble when `config.members` > 1."""
    return Crossmodal(config, normalisation) if config.members == 1 else CrossmodalEnsemble(config, normalisation)


class CrossmodalVisual(nn.Module):
    """Exported visual-only graph: ER probabilities and the pooled embedding."""

    output_names = ("er7_probs", "embedding")

    def __init__(self, model: Crossmodal | CrossmodalEnsemble):
        super().__init__()
        self.model = model
        self.input_names = model.visual_inputs

    def forward(self, visual_face: torch.Tensor, visual_gaze: torch.Tensor | None = None):
        out = self.model(visual_face=visual_face, visual_gaze=visual_gaze)
        return torch.softmax(out.visual_logits, -1), out.visual_embedding


class CrossmodalAudio(nn.Module):
    """Exported audio-only graph: ER probabilities and the pooled embedding."""

    input_names = ("audio",)
    output_names = ("er7_probs", "embedding")

    def __init__(self, model: Crossmodal):
        super().__init__()
        self.model = model

    def forward(self, audio: torch.Tensor):
        out = self.model(audio=audio)
        return torch.softmax(out.audio_logits, -1), out.audio_embedding


class CrossmodalJoint(nn.Module):
    """Exported audio + visual graph: joint, visual-only and audio-only ER probabilities."""

    output_names = ("er7_probs", "visual_er7_probs", "audio_er7_probs")

    def __init__(self, model: Crossmodal):
        super().__init__()
        self.model = model
        self.input_names = model.visual_inputs + ("audio",)

    def forward(self, *inputs: torch.Tensor):
        visual, audio = inputs[:-1], inputs[-1]
        out = self.model(visual[0], visual[1] if len(visual) > 1 else None, audio)
        return (torch.softmax(out.joint_logits, -1), torch.softmax(out.visual_logits, -1),
                torch.softmax(out.audio_logits, -1))
