"""Zero-shot CLIP expert: prompts, shapes on a random tiny CLIP, and, with a tiny CLIP trained here on clean vs.
marked textures and matching captions, that it separates and localises the marks with no normal images."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anomalens.clip import Tokenizer, preprocess
from anomalens.clip.model import CLIP
from anomalens.clip.prompts import DEFECT_LIBRARY, Prompts, generate_prompts
from anomalens.experts import ExpertInput
from anomalens.experts.clip_zero_shot import ClipZeroShotExpert
from anomalens.metrics import image_auroc, pixel_auroc
from anomalens.pixels import to_batch
from conftest import SIZE, plant_defect, texture, tiny_clip_config

TINY = tiny_clip_config(48, 3, context_length=24)


def score_images(expert: ClipZeroShotExpert, images) -> tuple[torch.Tensor, torch.Tensor]:
    """Float images → the expert's (maps, scores), the images brought to its tower's resolution as the inspector does."""
    return expert.score(ExpertInput(pixels=to_batch(images, expert.model.config.image_resolution, expert.resize_mode)))


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer()


# ---- prompts ---------------------------------------------------------------------------------------
def test_prompt_ensemble_with_offline_library():
    prompts = generate_prompts("metal_plate", defects=["a dent", "Scratch."])
    assert prompts.normal[:2] == ("metal plate", "flawless metal plate")
    assert {"metal plate without defect", "metal plate with a clean surface"} <= set(prompts.normal)
    assert {
        "damaged metal plate",
        "metal plate with flaw",
        "metal plate with dent",
        "metal plate with scratch",
        "metal plate with a crack",
        "metal plate with a foreign particle",
    } <= set(prompts.anomalous)
    assert len(prompts.anomalous) == len(set(prompts.anomalous))
    assert Prompts.sentences("metal plate")[0] == "a cropped photo of the metal plate."
    assert generate_prompts(None).normal[0] == "object" and "damaged object" in generate_prompts("").anomalous


def test_language_model_writes_descriptive_prompts():
    requests = []

    def writer(request: str) -> str:
        requests.append(request)
        return (
            "Sure! Here are some:\n1. normal: A weld seam with an even, smooth bead.\n"
            "- anomalous: weld seam with a porous hole\nDefect: 'a weld seam with spatter'\nnot a prompt line"
        )

    prompts = generate_prompts("weld seam", defects=["crack"], writer=writer)
    assert "weld seam" in requests[0] and "crack" in requests[0]
    assert "weld seam with an even, smooth bead" in prompts.normal
    assert {"weld seam with a porous hole", "weld seam with spatter", "weld seam with crack"} <= set(prompts.anomalous)
    library = {f"weld seam with {d}" for group in DEFECT_LIBRARY.values() for d in group}
    assert not library & set(prompts.anomalous)  # the model's descriptions replace the offline library
    silent = generate_prompts("weld seam", writer=lambda request: "I cannot help with that.")
    assert library <= set(silent.anomalous)  # … unless it wrote nothing usable


# ---- expert on a random tiny CLIP -------------------------------------------------------------------
@pytest.mark.parametrize("adapt", [False, True])
def test_expert_shapes_and_ranges(tokenizer, adapt):
    torch.manual_seed(0)
    expert = ClipZeroShotExpert(CLIP(TINY), tokenizer, "textile", defects=["a stain"], adapt=adapt, batch_size=2)
    assert expert.name == "clip" and expert.layers == (1, 2, 3)
    normal, anomalous = expert.text_embeddings()
    assert normal.shape == anomalous.shape == (32,)
    assert torch.allclose(normal.norm(), torch.tensor(1.0)) and torch.allclose(anomalous.norm(), torch.tensor(1.0))
    images = [texture(i) for i in range(3)] + [np.random.default_rng(0).random((70, 50, 3), dtype=np.float32)]
    maps, scores = score_images(expert, images)
    assert maps.shape == (4, 6, 6) and scores.shape == (4,)
    assert maps.dtype == scores.dtype == torch.float32
    assert 0 <= maps.min() and maps.max() <= 1 and 0 <= scores.min() and scores.max() <= 1


def test_contextual_scoring_keeps_the_phrases_that_separate_the_patches(tokenizer):
    torch.manual_seed(0)
    expert = ClipZeroShotExpert(CLIP(TINY), tokenizer, "textile")
    basis = torch.eye(TINY.embed_dim)
    expert.normal_phrases, expert.anomalous_phrases = basis[[2, 3]], basis[[0, 1]]
    patches = (basis[2] + 0.1 * basis[0]).repeat(6, 6, 1)  # every patch looks normal and a little like phrase 0 …
    patches[1:3, 4] = basis[1] + 0.1 * basis[0]  # … except two that phrase 1 singles out
    normal, anomalous = expert._adapted_states(F.normalize(patches, dim=-1)[None])
    assert torch.equal(normal, basis[2]) and torch.equal(anomalous, basis[1])


# ---- expert on a tiny CLIP trained here ----------------------------------------------------------------
def _train_tiny_clip(tokenizer, seed: int) -> CLIP:
    """A tiny CLIP that has learned what clean and marked textures look like and how each is described.
    Trained LiT-style (Zhai et al. 2022), which converges in seconds where training both towers from scratch
    at once stalls: the text tower first learns to tell normal from anomalous captions, then, locked, it
    teaches the image tower (and CLIP's learned temperature, from its usual 1/0.07) to match each image
    with its state's captions. Only whole images and their captions are seen: nothing about where marks are."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = CLIP(TINY)
    model.token_embedding.requires_grad_(False)  # random word vectors are distinct enough; saves a 3 M-row update
    prompts = generate_prompts("textile")

    def captions(phrases, n):
        return [rng.choice(Prompts.sentences(rng.choice(phrases))) for _ in range(n)]

    def embed(texts):
        return F.normalize(model.encode_text(tokenizer(texts, context_length=TINY.context_length)), dim=-1)

    text_params = [p for name, p in model.named_parameters() if not name.startswith("visual") and p.requires_grad]
    optimiser = torch.optim.Adam(text_params, lr=1e-3, betas=(0.9, 0.98), eps=1e-6)
    directions = F.normalize(torch.randn(2, TINY.embed_dim), dim=-1)
    for _ in range(40):
        text = embed(captions(prompts.normal, 32) + captions(prompts.anomalous, 32))
        loss = F.cross_entropy(10 * text @ directions.T, torch.tensor([0] * 32 + [1] * 32))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    marked = [i % 2 == 1 for i in range(128)]
    images = [plant_defect(texture(i), i, radius=22)[0] if m else texture(i) for i, m in enumerate(marked)]
    pixels, labels = preprocess(images, TINY.image_resolution), torch.tensor(marked, dtype=torch.long)
    optimiser = torch.optim.Adam([*model.visual.parameters(), model.logit_scale], lr=1e-3, betas=(0.9, 0.98), eps=1e-6)
    for _ in range(300):
        batch = torch.randint(len(pixels), (32,))
        with torch.no_grad():  # the state embeddings: averages of freshly drawn captions, as the expert uses them
            states = torch.stack(
                [F.normalize(embed(captions(p, 16)).mean(0), dim=0) for p in (prompts.normal, prompts.anomalous)]
            )
        logits = model.logit_scale.exp() * F.normalize(model.encode_image(pixels[batch]), dim=-1) @ states.T
        loss = F.cross_entropy(logits, labels[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if loss < 0.01:  # captions matched: stop before the image embeddings saturate the softmax
            break
    return model.eval()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trained_tiny_clip_separates_and_localises_marks_zero_shot(tokenizer, seed):
    expert = ClipZeroShotExpert(_train_tiny_clip(tokenizer, seed), tokenizer, "textile")
    marked = [plant_defect(texture(500 + i), i, radius=18) for i in range(8)]  # images never seen in training
    clean = [texture(600 + i) for i in range(8)]
    maps, scores = score_images(expert, [m[0] for m in marked] + clean)

    assert image_auroc([1] * 8 + [0] * 8, scores.numpy()) > 0.9
    masks = np.stack([m[1] for m in marked])
    full = F.interpolate(maps[:8, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    assert pixel_auroc(masks, full.numpy()) > 0.9
    cell = SIZE // maps.shape[-1]
    peaks_on_mark = 0
    for mask, patch_map in zip(masks, maps[:8]):
        row, col = divmod(int(patch_map.argmax()), patch_map.shape[1])
        peaks_on_mark += mask[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell].any()
    assert peaks_on_mark >= 7
