"""Text side of zero-shot inspection: phrases about normal and defective parts → unit embeddings in CLIP's
joint space. Each phrase is the average of its template sentences; a state (normal, anomalous) is the
average of its phrases. Used by the zero-shot expert and by the decoder that starts from text."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .model import CLIP
from .prompts import Prompts
from .tokenizer import Tokenizer

TEXT_BATCH = 64


@torch.inference_mode()
def embed_phrases(model: CLIP, tokenizer: Tokenizer, phrases: Sequence[str]) -> torch.Tensor:
    """(M, E): each phrase's template sentences embedded, normalised, averaged, normalised again."""
    sentences = [s for phrase in phrases for s in Prompts.sentences(phrase)]
    tokens = tokenizer(sentences, context_length=model.config.context_length)
    embedded = torch.cat(
        [F.normalize(model.encode_text(tokens[i : i + TEXT_BATCH]), dim=-1) for i in range(0, len(tokens), TEXT_BATCH)]
    )
    return F.normalize(embedded.view(len(phrases), -1, embedded.shape[-1]).mean(1), dim=-1)


def unit_mean(rows: torch.Tensor) -> torch.Tensor:
    return F.normalize(rows.mean(0), dim=0)


def state_embeddings(model: CLIP, tokenizer: Tokenizer, prompts: Prompts) -> torch.Tensor:
    """(2, E) unit "normal" and "anomalous" embeddings, each the mean of its state's phrases."""
    return torch.stack(
        [
            unit_mean(embed_phrases(model, tokenizer, prompts.normal)),
            unit_mean(embed_phrases(model, tokenizer, prompts.anomalous)),
        ]
    )
