"""rqvae_lib: turn item embeddings into hierarchical semantic IDs with a Residual-Quantized VAE."""

from .callbacks import CodebookUsageCallback
from .config import data_root, fast_mode, resolve_device, seed_everything
from .evaluate import (
    batch_inference,
    codebook_stats,
    evaluate_quantization,
    evaluate_reconstruction,
    perplexity,
    reconstruction_error,
)
from .model import RqVae, RqVaeConfig, load_model
from .modules import Decoder, Encoder
from .quantizer import (
    QuantizerConfig,
    QuantizerOutput,
    ResidualQuantizer,
    VectorQuantizer,
    codebook_maintenance,
    kmeans,
)
from .semantic_ids import add_collision_suffix, deduplicate, ids_to_tokens, prefix_groups
from .training import load_or_train, make_trainer, train_model
from .version import __version__

__all__ = [
    "Decoder",
    "Encoder",
    "QuantizerConfig",
    "QuantizerOutput",
    "ResidualQuantizer",
    "RqVae",
    "RqVaeConfig",
    "load_model",
    "VectorQuantizer",
    "add_collision_suffix",
    "batch_inference",
    "codebook_maintenance",
    "codebook_stats",
    "deduplicate",
    "data_root",
    "evaluate_quantization",
    "evaluate_reconstruction",
    "fast_mode",
    "ids_to_tokens",
    "kmeans",
    "perplexity",
    "reconstruction_error",
    "prefix_groups",
    "resolve_device",
    "seed_everything",
    "CodebookUsageCallback",
    "load_or_train",
    "make_trainer",
    "train_model",
    "__version__",
]
