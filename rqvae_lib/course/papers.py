"""The published numbers the lessons set beside their own: TIGER's RQ-VAE recipe and its table."""

from __future__ import annotations

#: The RQ-VAE recipe as the TIGER paper states it (Rajput et al., 2023, "Recommender Systems
#: with Generative Retrieval", arXiv:2305.05065, sections 3.1 and 4), for comparison with
#: TUTORIAL_CONFIG. Plain strings: some entries are prose, and "not stated" means the paper does
#: not say. Notebook 03 prints it beside this project's recipe (``rqvae_lib.config.TUTORIAL_CONFIG``).
TIGER_PAPER_RQVAE: dict[str, str] = {
    "item text": "title, price, brand and category, as one sentence",
    "text encoder": "Sentence-T5, 768-d",
    "encoder layers": "512, 256, 128, ReLU",
    "latent dim": "32",
    "levels x codes": "3 x 256, one codebook per level",
    "beta (commitment)": "0.25",
    "codebook init": "k-means on the first training batch",
    "dead-code restarts": "not stated",
    "usage balancing": "not stated",
    "reconstruction weight": "1 (loss = reconstruction + RQ-VAE loss)",
    "optimizer": "Adagrad, learning rate 0.4",
    "learning-rate schedule": "not stated",
    "batch size": "1024",
    "training": "20k epochs, for codebook usage of at least 80%",
    "collisions": "a 4th code numbering the items that share an ID",
}


#: TIGER's table on Beauty (Rajput et al. 2023, Table 2; P5 split, full item IDs):
#: https://arxiv.org/abs/2305.05065. SASRec there is trained with the BCE loss.
PAPER_BEAUTY: dict[str, dict[str, float]] = {
    "TIGER (paper)": {"recall@5": 0.0454, "ndcg@5": 0.0321, "recall@10": 0.0648, "ndcg@10": 0.0384},
    "SASRec, BCE (TIGER's table)": {
        "recall@5": 0.0387, "ndcg@5": 0.0249, "recall@10": 0.0605, "ndcg@10": 0.0318,
    },
}  # fmt: skip
