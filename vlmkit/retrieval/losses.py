"""The training loss for a config: sentence-transformers' contrastive losses, plus SigLIP's sigmoid loss.

- `infonce` (the [CLIP retrieval guide]'s default): `MultipleNegativesRankingLoss` with scale = 1/temperature
  (tau = 0.05 -> 20), text -> image over the in-batch images (+ hard negatives when the data has them).
- `symmetric_infonce`: the same with `directions=("query_to_doc", "doc_to_query")`, `partition_mode=
  "per_direction"`: the mean of the text->image and image->text cross-entropies, which is CLIP's / open_clip's
  loss (with a fixed temperature instead of a learned one).
- `use_gradient_cache`: `CachedMultipleNegativesRankingLoss` (GradCache, Gao et al. 2021), same options, with
  `gradient_cache_chunk_size` as its mini-batch: the batch's negatives at the memory of one chunk.
- `use_mrl`: wrapped in `MatryoshkaLoss` over `mrl_dims`.
- Several processes: `gather_across_devices=True`, so every process's texts are scored against the images of ALL
  processes, with gradients flowing back to their owners (sentence-transformers' `all_gather_with_grad`).
- `sigmoid`: `SigLIPSigmoidLoss` below (hand-written: no sentence-transformers loss is SigLIP's).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from vlmkit.retrieval.config import RetrievalConfig

log = logging.getLogger(__name__)


class SigLIPSigmoidLoss(nn.Module):
    """SigLIP's pairwise sigmoid loss (Zhai et al., "Sigmoid Loss for Language Image Pre-Training", ICCV 2023).

    Written here because sentence-transformers' in-batch losses are all softmax (InfoNCE-style) losses. Every
    (text i, image j) pair of the batch is an independent binary problem: z_ij = t * cos(x_i, y_j) + b, label +1 for
    the text's own image and -1 otherwise (in-batch and hard-negative images), loss = -sum log sigmoid(label * z)
    / n_texts, as in the paper. t = exp(logit_scale) and b = logit_bias are the model's own learned parameters
    (SiglipModel has them; trained in a full fine-tune, frozen under LoRA, so fine-tuning keeps the pretrained
    calibration). A CLIP model has no bias: b = 0 and t from its logit_scale. With several processes the local texts
    are scored against the images of all processes (gathered with gradients), which covers every pair once, as
    the paper's chunked implementation does.
    """

    def __init__(self, model: Any, gather_across_devices: bool = False) -> None:
        super().__init__()
        self.model = model
        self.gather_across_devices = gather_across_devices

    def _scale_bias(self) -> tuple[Tensor, Tensor | float]:
        st_model = getattr(self.model, "module", self.model)  # the trainer may have wrapped it in DDP
        hf = st_model[0].model
        bias = getattr(hf, "logit_bias", None)
        return hf.logit_scale.exp(), (bias if bias is not None else 0.0)

    def forward(self, sentence_features: list[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        from sentence_transformers.base.losses.merged_forward import embed_columns

        return self.compute_loss_from_embeddings(embed_columns(self.model, sentence_features), labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        from sentence_transformers.util import all_gather_with_grad, get_rank

        texts = nn.functional.normalize(embeddings[0], dim=-1)
        columns = [nn.functional.normalize(e, dim=-1) for e in embeddings[1:]]
        n = texts.size(0)
        offset = 0
        if self.gather_across_devices:
            columns = [all_gather_with_grad(c) for c in columns]
            offset = get_rank() * n
        images = torch.cat(columns, dim=0)  # positives of every process first, then the hard negatives
        scale, bias = self._scale_bias()
        logits = texts @ images.T * scale + bias
        signs = -torch.ones_like(logits)
        signs[torch.arange(n, device=logits.device), torch.arange(offset, offset + n, device=logits.device)] = 1.0
        return -nn.functional.logsigmoid(signs * logits).sum() / n

    def get_config_dict(self) -> dict[str, Any]:
        return {"gather_across_devices": self.gather_across_devices}


def build_loss(model: Any, config: RetrievalConfig, distributed: bool) -> nn.Module:
    from sentence_transformers import losses

    if config.loss_type == "sigmoid":
        loss: nn.Module = SigLIPSigmoidLoss(model, gather_across_devices=distributed)
    else:
        kwargs: dict[str, Any] = {"scale": 1.0 / config.temperature, "gather_across_devices": distributed}
        if config.loss_type == "symmetric_infonce":
            kwargs.update(directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction")
        if config.use_gradient_cache:
            loss = losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=config.gradient_cache_chunk_size,
                                                             **kwargs)
        else:
            loss = losses.MultipleNegativesRankingLoss(model, **kwargs)
    if config.use_mrl:
        loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=list(config.mrl_dims))
    return loss


def uses_logit_parameters(config: RetrievalConfig) -> bool:
    """Only the sigmoid loss reads the model's logit scale/bias; the others leave them unused (frozen then, so
    DistributedDataParallel sees no parameter without a gradient)."""
    return config.loss_type == "sigmoid"
