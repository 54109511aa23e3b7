"""The answer key: reference solutions of :mod:`rqvae_lib.course.exercises`, and typical wrong answers.

It lives with the tests, not in the package, so a student who installs the package cannot
import it.

``SOLUTIONS[id]`` is the answer the notebook's solution cell gives (the same code); the tests
check that it passes. ``WRONG_ANSWERS[id]`` lists ``(answer, words the hint must contain)``:
mistakes a student is likely to make, each of which must fail with that hint. Every registered
exercise needs a solution and at least one wrong answer here (the tests check that too).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rqvae_lib.course.analysis import shared_prefix_length
from rqvae_lib.course.vocabulary import vocabulary_footprint
from rqvae_lib.data import amazon
from rqvae_lib.data.amazon import item_text, leave_one_out
from rqvae_lib.evaluate import codebook_stats, perplexity
from rqvae_lib.quantizer import ResidualQuantizer, VectorQuantizer
from rqvae_lib.retrieval.cold import nearest_text_new_items
from rqvae_lib.retrieval.metrics import mean_sem, recall_ndcg
from rqvae_lib.retrieval.tokens import NUM_SPECIAL, ItemTokenizer
from rqvae_lib.semantic_ids import add_collision_suffix, prefix_groups

#: The words of the hint for an answer that is, or calls, the library's own function.
LIBRARY_HINT = "the library's own"

# -- notebook 02 ------------------------------------------------------------------------------


def nearest_code(r, codebook):
    """Index of the nearest code for each row of r: argmin of squared Euclidean distances."""
    d = (r[:, None, :] - codebook[None, :, :]).pow(2).sum(-1)  # (N, K)
    return d.argmin(dim=1)  # (N,)


def residual_ids(z, codebooks):
    """Semantic IDs (N, L) and reconstructions (N, D) by residual quantization."""
    residual, total, ids = z, torch.zeros_like(z), []
    for codebook in codebooks:
        k = nearest_code(residual, codebook)  # (N,) this level's token
        residual, total = residual - codebook[k], total + codebook[k]
        ids.append(k)
    return torch.stack(ids, dim=1), total


def _farthest_code(r, codebook):
    return (r[:, None, :] - codebook[None, :, :]).pow(2).sum(-1).argmax(dim=1)


def _distances_only(r, codebook):
    return (r[:, None, :] - codebook[None, :, :]).pow(2).sum(-1)


def _argmin_over_rows(r, codebook):
    return (r[:, None, :] - codebook[None, :, :]).pow(2).sum(-1).argmin(dim=0)


def _sum_over_codes(r, codebook):  # sums over the wrong axis: (N, D), then argmin over D
    return (r[:, None, :] - codebook[None, :, :]).pow(2).sum(1).argmin(dim=1)


def _dot_product(r, codebook):  # the largest inner product is not the nearest code
    return (r @ codebook.T).argmax(dim=1)


def _quantize_z_every_level(z, codebooks):
    ids = [nearest_code(z, c) for c in codebooks]
    total = sum(c[k] for c, k in zip(codebooks, ids, strict=True))
    return torch.stack(ids, dim=1), total


def _levels_first(z, codebooks):
    ids, total = residual_ids(z, codebooks)
    return ids.T, total


def _returns_residual(z, codebooks):
    ids, total = residual_ids(z, codebooks)
    return ids, z - total


def _ids_only(z, codebooks):
    return residual_ids(z, codebooks)[0]


def _last_code_only(z, codebooks):
    ids, _ = residual_ids(z, codebooks)
    return ids, codebooks[-1][ids[:, -1]]


def _library_nearest_code(r, codebook):  # the library's VectorQuantizer does the work
    vq = VectorQuantizer(len(codebook), r.shape[1], kmeans_init=False, dead_code_steps=0)
    with torch.no_grad():
        vq.embedding.weight.copy_(codebook)
    return vq.nearest(r)


def _library_residual_ids(z, codebooks):  # the library's ResidualQuantizer, codebooks copied in
    rq = ResidualQuantizer(
        len(codebooks), *codebooks[0].shape, kmeans_init=False, dead_code_steps=0
    )
    with torch.no_grad():
        for level, codebook in zip(rq.levels, codebooks, strict=True):
            level.embedding.weight.copy_(codebook)
        out = rq.eval()(z)
    return out.encoding_indices, out.quantized


SOLUTIONS: dict[str, Any] = {
    # the notebook's solution cell: exp of the entropy of the shares (3/4, 1/4), about 1.755
    "02-two-code-perplexity": math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))),
    "02-nearest-code": nearest_code,
    "02-residual-loop": residual_ids,
}

WRONG_ANSWERS: dict[str, list[tuple[Any, str]]] = {
    "02-two-code-perplexity": [
        (1.0, "one code taking every item"),
        (2.0, "two codes used equally often"),
        (0.5623, "the entropy H"),
        (0.8113, "entropy in bits"),
        (1.6, "1 / sum_k p_k^2"),
        (256, "dead codes have p = 0"),
        (1.2408, "You left one code out"),
        (1.4766, "bases are mixed"),
        (1.77, "Close, but"),
        (0.57, "never below 1"),
        (1.5, "Perplexity = exp(H)"),
        ("1.75", "with a number"),
    ],
    "02-nearest-code": [
        (_farthest_code, "argmin, not argmax"),
        (_distances_only, ".argmin(dim=1)"),
        (_argmin_over_rows, "dim=1"),
        (_sum_over_codes, "do not get their nearest code"),
        (_dot_product, "do not get their nearest code"),
        (nearest_code(torch.zeros(2, 2), torch.zeros(3, 2)), "without calling it"),
        (_library_nearest_code, LIBRARY_HINT),
    ],
    "02-residual-loop": [
        (_quantize_z_every_level, "quantized z again"),
        (_levels_first, "stack the levels along dim 1"),
        (_returns_residual, "last residual"),
        (_ids_only, "Return two things"),
        (_last_code_only, "only the last level's code"),
        (_library_residual_ids, LIBRARY_HINT),
    ],
}


# -- notebooks 01, 02 (the VQ losses) and 03 ---------------------------------------------------


def my_item_text(row):
    """The item's text, 'Title: ...; Brand: ...; Categories: ...; Price: $...', missing fields left out."""

    def present(value):  # None, NaN, "" and [] are missing
        if isinstance(value, (list, tuple, str)):
            return len(value) > 0
        return value is not None and value == value  # NaN is the one value not equal to itself

    parts = []
    if present(row["title"]):
        parts.append(f"Title: {row['title']}")
    if present(row["brand"]):
        parts.append(f"Brand: {row['brand']}")
    if present(row["categories"]):
        parts.append(f"Categories: {', '.join(row['categories'])}")
    if present(row["price"]):
        parts.append(f"Price: ${float(row['price']):.2f}")
    return "; ".join(parts)


def _text_with_none(row):  # writes missing fields as 'None' / 'nan'
    cats, price = ", ".join(row["categories"]), row["price"]
    price = f"{price:.2f}" if isinstance(price, float) else price
    return f"Title: {row['title']}; Brand: {row['brand']}; Categories: {cats}; Price: ${price}"


def _text_categories_as_list(row):
    return my_item_text(row).replace(", ".join(row["categories"]) or "\0", str(row["categories"]))


def _text_price_unformatted(row):
    return my_item_text(row).replace(f"${float(row['price'] or 0):.2f}", f"${row['price']}")


def _text_comma_separated(row):
    return my_item_text(row).replace("; ", " | ")


def _text_by_the_library(row):  # calls rqvae_lib.data.item_text through its module
    return amazon.item_text(row)


def my_vq_losses(r, codebook, beta):
    """One level's (codebook loss, commitment loss), with .detach() as the stop-gradient."""
    k = nearest_code(r.detach(), codebook)  # (N,) the nearest codes
    e = codebook[k]  # (N, D); gradients flow into the codebook
    codebook_loss = (r.detach() - e).pow(2).mean()  # ||sg[r] - e||^2: moves the codes
    commitment_loss = beta * (r - e.detach()).pow(2).mean()  # beta ||r - sg[e]||^2: moves r
    return codebook_loss, commitment_loss


def _vq_losses_no_detach(r, codebook, beta):
    e = codebook[nearest_code(r, codebook)]
    return (r - e).pow(2).mean(), beta * (r - e).pow(2).mean()


def _vq_losses_detach_swapped(r, codebook, beta):
    e = codebook[nearest_code(r, codebook)]
    return (r - e.detach()).pow(2).mean(), beta * (r.detach() - e).pow(2).mean()


def _vq_losses_swapped(r, codebook, beta):
    book, commit = my_vq_losses(r, codebook, beta)
    return commit, book


def _vq_losses_no_beta(r, codebook, beta):
    return my_vq_losses(r, codebook, 1.0)


def _vq_losses_summed(r, codebook, beta):
    e = codebook[nearest_code(r.detach(), codebook)]
    return (r.detach() - e).pow(2).sum(), beta * (r - e.detach()).pow(2).sum()


def my_collision_rate(ids):
    """Share of the items whose whole ID is shared with at least one other item."""
    _, inverse, counts = torch.unique(ids, dim=0, return_inverse=True, return_counts=True)
    return (counts[inverse] > 1).float().mean().item()


def _one_minus_distinct(ids):
    return 1 - len(torch.unique(ids, dim=0)) / len(ids)


def _colliding_items_count(ids):
    return my_collision_rate(ids) * len(ids)


def _first_level_only(ids):
    return my_collision_rate(ids[:, :1])


def _collision_rate_by_the_library(ids):
    return codebook_stats(ids, int(ids.max()) + 1)["collision_rate"]


def _shared_id_share(ids):
    counts = torch.unique(ids, dim=0, return_counts=True)[1]
    return (counts > 1).float().mean().item()


SOLUTIONS.update(
    {
        "01-item-text": my_item_text,
        "01-mean-cosine": 0.65**2,
        "02-vq-losses": my_vq_losses,
        "03-training-steps": 1100,
        "03-mean-baseline": 1 - 0.65**2,
        "03-collision-rate": my_collision_rate,
    }
)

WRONG_ANSWERS.update(
    {
        "01-item-text": [
            (_text_with_none, "Leave a missing field out"),
            (_text_categories_as_list, "Join the categories"),
            (_text_price_unformatted, "two decimals"),
            (_text_comma_separated, "Separate the fields"),
            (item_text, LIBRARY_HINT),
            (_text_by_the_library, LIBRARY_HINT),
        ],
        "01-mean-cosine": [
            (0.65, "norm of the mean vector itself"),
            (0.65**0.5, "Not the square root"),
            (0.0, "spread evenly"),
            (0.2, "the mean vector dotted with itself"),
            ("0.42", "with a number"),
        ],
        "02-vq-losses": [
            (_vq_losses_no_detach, "also sends a gradient to r"),
            (_vq_losses_detach_swapped, "does not reach the codebook"),
            (_vq_losses_swapped, "swapped"),
            (_vq_losses_no_beta, "factor beta"),
            (_vq_losses_summed, "You summed"),
        ],
        "03-training-steps": [
            (1000, "is a step too"),
            (11, "one epoch"),
            (10891 * 100 / 1024, "count the batches of one epoch first"),
            (100, "number of epochs"),
        ],
        "03-mean-baseline": [
            (1, "predicting 0"),
            (0.65**2, "share the mean explains"),
            (0.35, "Square the norm"),
        ],
        "03-collision-rate": [
            (_one_minus_distinct, "counts only the extra items"),
            (_colliding_items_count, "divide by N"),
            (_first_level_only, "first codes only"),
            (_shared_id_share, "share of distinct IDs"),
            (_collision_rate_by_the_library, LIBRARY_HINT),
        ],
    }
)


# -- notebooks 04 and 05 ----------------------------------------------------------------------


def dead_fraction(counts):
    """Fraction of the K codes that no item uses; counts (K,) holds items per code."""
    return (counts == 0).float().mean().item()


def perplexity_of(counts):
    """exp(entropy) of the shares p = counts / counts.sum(), dead codes left out (0 ln 0 = 0)."""
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return torch.exp(-(p * p.log()).sum()).item()


def collision_suffix(ids):
    """(N, L + 1): the IDs and a last column numbering the rows that share an ID, 0, 1, ..."""
    seen = {}  # ID tuple -> how many rows had it so far
    suffix = []
    for row in ids.tolist():
        key = tuple(row)
        suffix.append(seen.get(key, 0))
        seen[key] = seen.get(key, 0) + 1
    return torch.cat([ids, torch.tensor(suffix)[:, None]], dim=1)


def count_under_prefix(ids, prefix):
    """How many rows of ids (N, L) start with the codes in prefix."""
    d = len(prefix)
    return int((ids[:, :d] == torch.tensor(prefix)).all(dim=1).sum())


def prefix_share(ids, a, b, depth):
    """Share of the pairs (a[i], b[i]) whose IDs have the same first ``depth`` codes."""
    return (ids[a, :depth] == ids[b, :depth]).all(dim=1).float().mean().item()


def level_perplexities():
    """(perplexity of A, perplexity of B) of exercise 04-higher-perplexity, from the counts."""
    level_a = torch.tensor([2500] * 4 + [0] * 252)  # 4 codes of 2,500 items, 252 dead
    level_b = torch.tensor([9745] + [1] * 255)  # one code of 9,745 items, 255 of one item
    return perplexity_of(level_a), perplexity_of(level_b)


def _perplexity_by_the_library(counts):  # one code per item, then rqvae_lib.evaluate.perplexity
    codes = torch.repeat_interleave(torch.arange(len(counts)), counts)
    return perplexity(codes, len(counts))


def _dead_fraction_by_the_library(counts):
    codes = torch.repeat_interleave(torch.arange(len(counts)), counts)[:, None]
    return 1 - codebook_stats(codes, len(counts))["usage_rate"]


def _suffix_by_the_library(ids):
    return add_collision_suffix(ids)


def _count_by_the_library(ids, prefix):
    return len(prefix_groups(ids, len(prefix)).get(tuple(prefix), []))


def _prefix_share_by_the_library(ids, a, b, depth):
    return float((shared_prefix_length(ids, a.numpy(), b.numpy()) >= depth).mean())


def _used_fraction(counts):
    return (counts > 0).float().mean().item()


def _dead_count(counts):
    return int((counts == 0).sum())


def _dead_over_items(counts):
    return ((counts == 0).sum() / counts.sum()).item()


def _entropy_only(counts):
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return -(p * p.log()).sum().item()


def _zeros_kept(counts):  # 0 * log(0) = nan
    p = counts.double() / counts.sum()
    return torch.exp(-(p * p.log()).sum()).item()


def _codes_in_use(counts):
    return int((counts > 0).sum())


def _suffix_column_only(ids):
    return collision_suffix(ids)[:, -1]


def _suffix_from_one(ids):
    out = collision_suffix(ids)
    out[:, -1] += 1
    return out


def _group_size(ids):
    _, inverse, counts = torch.unique(ids, dim=0, return_inverse=True, return_counts=True)
    return torch.cat([ids, counts[inverse][:, None]], dim=1)


def _row_number(ids):  # unique, but a global counter, not a count within each ID
    return torch.cat([ids, torch.arange(len(ids))[:, None]], dim=1)


def _last_code_only(ids, prefix):
    d = len(prefix)
    return int((ids[:, d - 1] == prefix[-1]).sum())


def _any_code(ids, prefix):
    d = len(prefix)
    return int((ids[:, :d] == torch.tensor(prefix)).any(dim=1).sum())


def _share_of_code_at_depth(ids, a, b, depth):
    return (ids[a, depth - 1] == ids[b, depth - 1]).float().mean().item()


def _count_of_pairs(ids, a, b, depth):
    return int((ids[a, :depth] == ids[b, :depth]).all(dim=1).sum())


def _whole_ids(ids, a, b, depth):
    return (ids[a] == ids[b]).all(dim=1).float().mean().item()


SOLUTIONS.update(
    {
        "04-dead-fraction": dead_fraction,
        "04-perplexity": perplexity_of,
        "04-higher-perplexity": level_perplexities(),
        "05-collision-suffix": collision_suffix,
        "05-count-under-prefix": count_under_prefix,
        "05-prefix-share": prefix_share,
    }
)

WRONG_ANSWERS.update(
    {
        "04-dead-fraction": [
            (_used_fraction, "fraction of codes in use"),
            (_dead_count, "divide it by K"),
            (_dead_over_items, "divide by K = len(counts)"),
            (_dead_fraction_by_the_library, LIBRARY_HINT),
        ],
        "04-perplexity": [
            (_entropy_only, "That is the entropy H"),
            (_zeros_kept, "0 * log(0)"),
            (_codes_in_use, "number of codes in use"),
            (perplexity, LIBRARY_HINT),
            (_perplexity_by_the_library, LIBRARY_HINT),
        ],
        "04-higher-perplexity": [  # the letter alone, right or wrong, is not an answer any more
            ("A", "could be a guess"),
            ("B", "could be a guess"),
            (4.0, "Answer with two numbers"),
            (("A", 4.0), "must be a number"),
            ((4.0, 256), "usage, not perplexity"),
            ((1.30, 4.0), "swapped"),
            ((1.386, 0.26), "entropies"),
            ((4.0, 1.0), "a little higher"),
            ((4.0, 1.0255), "a little higher"),
            ((252, 1.3), "p = 1/4"),
        ],
        "05-collision-suffix": [
            (_suffix_column_only, "suffix column alone"),
            (_suffix_from_one, "Start counting at 0"),
            (_group_size, "size of the item's group"),
            (_row_number, "counts within each ID"),
            (add_collision_suffix, LIBRARY_HINT),
            (_suffix_by_the_library, LIBRARY_HINT),
        ],
        "05-count-under-prefix": [
            (_last_code_only, "compared only code"),
            (_any_code, "not .any"),
            (_count_by_the_library, LIBRARY_HINT),
        ],
        "05-prefix-share": [
            (_share_of_code_at_depth, "compared only code"),
            (_count_of_pairs, "number of pairs"),
            (_whole_ids, "compared whole IDs"),
            (_prefix_share_by_the_library, LIBRARY_HINT),
        ],
    }
)


# -- notebook 06 ------------------------------------------------------------------------------


def ndcg_at_k(rank, k):
    """NDCG@k of one held-out item at 1-based ``rank`` (0: not ranked)."""
    import math

    return 1.0 / math.log2(rank + 1) if 0 < rank <= k else 0.0


def split_sequence(items):
    """(training items, validation item, test item) of one user's time-ordered items."""
    return items[:-2], items[-2], items[-1]


def _ndcg_log2_rank(rank, k):
    import math

    return 1.0 / math.log2(rank) if 0 < rank <= k else 0.0


def _ndcg_no_cutoff(rank, k):
    import math

    return 1.0 / math.log2(rank + 1) if rank > 0 else 0.0


def _ndcg_natural_log(rank, k):
    import math

    return 1.0 / math.log(rank + 1) if 0 < rank <= k else 0.0


def _ndcg_by_the_library(rank, k):  # items 1..k ranked in order, the held-out one is `rank`
    ranked = torch.arange(1, k + 1)[None]  # (1, k)
    return recall_ndcg(ranked, [rank or -1], ks=(k,))[f"ndcg@{k}"].mean


def _ndcg_per_user_by_the_library(rank, k):  # the library's per-user NDCG of a rank
    from rqvae_lib.retrieval.metrics import per_user_metric

    return per_user_metric([rank], f"ndcg@{k}")[0].item()


def _split_by_the_library(items):
    split = leave_one_out({0: list(items)})
    return split.train[0], split.val[0], split.test[0]


def _split_last_is_validation(items):
    return items[:-2], items[-1], items[-2]


def _split_keeps_validation(items):
    return items[:-1], items[-2], items[-1]


SOLUTIONS.update({"06-ndcg": ndcg_at_k, "06-leave-one-out": split_sequence})
WRONG_ANSWERS.update(
    {
        "06-ndcg": [
            (_ndcg_log2_rank, "log2(rank + 1)"),
            (_ndcg_no_cutoff, "below the cut-off"),
            (_ndcg_natural_log, "base-2"),
            (_ndcg_by_the_library, LIBRARY_HINT),
            (_ndcg_per_user_by_the_library, LIBRARY_HINT),
        ],
        "06-leave-one-out": [
            (_split_last_is_validation, "LAST one"),
            (_split_keeps_validation, "items[:-2]"),
            (leave_one_out, LIBRARY_HINT),
            (_split_by_the_library, LIBRARY_HINT),
        ],
    }
)


# -- notebook 07 ------------------------------------------------------------------------------


def vocab_size(num_levels, codebook_size, max_items_per_id):
    """Item tokens of a TIGER vocabulary: a range of codes per level, and the suffix range."""
    return num_levels * codebook_size + max_items_per_id  # suffixes 0 .. max_items_per_id - 1


def seed_verdict(differences):
    """'A ahead', 'B ahead' or 'within noise' from per-seed differences A - B."""
    n = len(differences)
    mean = sum(differences) / n
    std = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))  # sample std
    sem = std / math.sqrt(n)  # standard error of the mean over seeds
    if abs(mean) > 2 * sem:
        return "A ahead" if mean > 0 else "B ahead"
    return "within noise"


def nearest_new(history_embeddings, new_embeddings, new_ids, k):
    """The k new items nearest in cosine to the mean of the user's normalised history rows."""
    history = history_embeddings / history_embeddings.norm(dim=1, keepdim=True)
    new = new_embeddings / new_embeddings.norm(dim=1, keepdim=True)
    query = history.mean(dim=0)  # (D,) its length does not change the ranking
    scores = (new @ query).tolist()  # (M,) cosine similarities, up to the query's length
    order = sorted(range(len(new_ids)), key=lambda j: (-scores[j], new_ids[j]))
    return [new_ids[j] for j in order[:k]]


def _vocab_no_suffix(num_levels, codebook_size, max_items_per_id):
    return num_levels * codebook_size


def _vocab_suffix_one_short(num_levels, codebook_size, max_items_per_id):
    return num_levels * codebook_size + max_items_per_id - 1


def _vocab_possible_ids(num_levels, codebook_size, max_items_per_id):
    return codebook_size**num_levels


def _vocab_with_specials(num_levels, codebook_size, max_items_per_id):
    return num_levels * codebook_size + max_items_per_id + 3


def _vocab_by_the_library(num_levels, codebook_size, max_items_per_id):
    fp = vocabulary_footprint(max_items_per_id, 64, num_levels, codebook_size, max_items_per_id)
    return fp.vocab_size - NUM_SPECIAL


def _vocab_by_the_tokenizer(num_levels, codebook_size, max_items_per_id):
    ids = torch.zeros(max_items_per_id, num_levels, dtype=torch.long)  # one ID, max items on it
    tokenizer = ItemTokenizer(ids, list(range(max_items_per_id)), num_embeddings=codebook_size)
    return sum(tokenizer.level_sizes)


def _verdict_population_std(differences):
    n = len(differences)
    mean = sum(differences) / n
    std = math.sqrt(sum((d - mean) ** 2 for d in differences) / n)  # n, not n - 1
    if abs(mean) > 2 * std / math.sqrt(n):
        return "A ahead" if mean > 0 else "B ahead"
    return "within noise"


def _verdict_no_sqrt(differences):
    n = len(differences)
    mean = sum(differences) / n
    std = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    if abs(mean) > 2 * std:  # the standard deviation, not the standard error
        return "A ahead" if mean > 0 else "B ahead"
    return "within noise"


def _verdict_one_sem(differences):
    n = len(differences)
    mean = sum(differences) / n
    sem = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1)) / math.sqrt(n)
    if abs(mean) > sem:
        return "A ahead" if mean > 0 else "B ahead"
    return "within noise"


def _verdict_by_the_library(differences):
    mean, sem = mean_sem(torch.tensor(differences, dtype=torch.float64))
    if abs(mean) > 2 * sem:
        return "A ahead" if mean > 0 else "B ahead"
    return "within noise"


def _nearest_raw_mean(history_embeddings, new_embeddings, new_ids, k):
    query = history_embeddings.mean(dim=0)  # long history rows dominate the query
    new = new_embeddings / new_embeddings.norm(dim=1, keepdim=True)
    scores = (new @ query).tolist()
    order = sorted(range(len(new_ids)), key=lambda j: (-scores[j], new_ids[j]))
    return [new_ids[j] for j in order[:k]]


def _nearest_lowest_first(history_embeddings, new_embeddings, new_ids, k):
    history = history_embeddings / history_embeddings.norm(dim=1, keepdim=True)
    new = new_embeddings / new_embeddings.norm(dim=1, keepdim=True)
    scores = (new @ history.mean(dim=0)).tolist()
    order = sorted(range(len(new_ids)), key=lambda j: (scores[j], new_ids[j]))
    return [new_ids[j] for j in order[:k]]


def _nearest_euclidean(history_embeddings, new_embeddings, new_ids, k):
    history = history_embeddings / history_embeddings.norm(dim=1, keepdim=True)
    query = history.mean(dim=0)  # the mean of the normalised rows, not normalised itself
    distances = (new_embeddings - query).norm(dim=1).tolist()  # the new rows left as they are
    order = sorted(range(len(new_ids)), key=lambda j: (distances[j], new_ids[j]))
    return [new_ids[j] for j in order[:k]]


def _nearest_raw_new_rows(history_embeddings, new_embeddings, new_ids, k):
    history = history_embeddings / history_embeddings.norm(dim=1, keepdim=True)
    scores = (new_embeddings @ history.mean(dim=0)).tolist()  # new rows not normalised
    order = sorted(range(len(new_ids)), key=lambda j: (-scores[j], new_ids[j]))
    return [new_ids[j] for j in order[:k]]


def _nearest_ties_by_row(history_embeddings, new_embeddings, new_ids, k):
    history = history_embeddings / history_embeddings.norm(dim=1, keepdim=True)
    new = new_embeddings / new_embeddings.norm(dim=1, keepdim=True)
    scores = new @ history.mean(dim=0)
    order = torch.sort(scores, descending=True, stable=True).indices  # ties in row order
    return [new_ids[j] for j in order[:k].tolist()]


def _nearest_positions(history_embeddings, new_embeddings, new_ids, k):
    history = history_embeddings / history_embeddings.norm(dim=1, keepdim=True)
    new = new_embeddings / new_embeddings.norm(dim=1, keepdim=True)
    scores = (new @ history.mean(dim=0)).tolist()
    return sorted(range(len(new_ids)), key=lambda j: (-scores[j], new_ids[j]))[:k]


def _nearest_by_the_library(history_embeddings, new_embeddings, new_ids, k):
    history_ids = [-1 - i for i in range(len(history_embeddings))]  # ids no new item has
    embeddings = torch.cat([history_embeddings, new_embeddings])
    return nearest_text_new_items(
        [history_ids], embeddings, history_ids + list(new_ids), new_ids, k
    )[0].tolist()


SOLUTIONS.update(
    {
        "07-vocabulary-size": vocab_size,
        "07-seed-verdict": seed_verdict,
        "07-nearest-text": nearest_new,
    }
)
WRONG_ANSWERS.update(
    {
        "07-vocabulary-size": [
            (_vocab_no_suffix, "not the collision suffix"),
            (_vocab_suffix_one_short, "one suffix token short"),
            (_vocab_possible_ids, "not the number of tokens"),
            (_vocab_with_specials, "special tokens"),
            (_vocab_by_the_library, LIBRARY_HINT),
            (_vocab_by_the_tokenizer, LIBRARY_HINT),
        ],
        "07-seed-verdict": [
            (_verdict_population_std, "population standard deviation"),
            (_verdict_no_sqrt, "divided by sqrt(n)"),
            (_verdict_one_sem, "one standard error"),
            (_verdict_by_the_library, LIBRARY_HINT),
        ],
        "07-nearest-text": [
            (_nearest_raw_mean, "averaged the raw history rows"),
            (_nearest_lowest_first, "highest similarity first"),
            (_nearest_euclidean, "Euclidean distance"),
            (_nearest_raw_new_rows, "unnormalised new rows"),
            (_nearest_ties_by_row, "smaller id"),
            (_nearest_positions, "positions"),
            (_nearest_by_the_library, LIBRARY_HINT),
        ],
    }
)


# -- notebook 08 ------------------------------------------------------------------------------


def joint_vectors(text, collab, known, weight):
    """Each text row at length 1, then its SASRec vector at length 1 times weight (or zeros)."""
    text = torch.nn.functional.normalize(text, dim=1)  # a zero row stays zero, never NaN
    collab = torch.nn.functional.normalize(collab, dim=1) * weight
    return torch.cat([text, collab * known[:, None]], dim=1)  # zeros where known is False


def _joint_whole_row(text, collab, known, weight):
    rows = torch.cat([text, collab * known[:, None]], dim=1)
    return rows / rows.norm(dim=1, keepdim=True)


def _joint_no_zeros(text, collab, known, weight):
    return joint_vectors(text, collab, torch.ones_like(known), weight)


def _joint_no_weight(text, collab, known, weight):
    return joint_vectors(text, collab, known, 1.0)


def _joint_raw_text(text, collab, known, weight):
    collab = collab / collab.norm(dim=1, keepdim=True) * weight
    return torch.cat([text, collab * known[:, None]], dim=1)


def _joint_by_the_library(text, collab, known, weight):
    from types import SimpleNamespace

    from rqvae_lib.retrieval.id_tables import joint_features

    ids = torch.arange(len(text))
    return joint_features(
        text, ids, SimpleNamespace(vectors=collab, known=known, item_ids=ids), weight
    )


SOLUTIONS.update({"08-joint-vector": joint_vectors})
WRONG_ANSWERS.update(
    {
        "08-joint-vector": [
            (_joint_whole_row, "each half"),
            (_joint_no_zeros, "zeros"),
            (_joint_no_weight, "weight"),
            (_joint_raw_text, "text row"),
            (_joint_by_the_library, LIBRARY_HINT),
        ]
    }
)


def my_heldout_pairs(train, val):
    """(last training item, validation item) per user, the two different."""
    return [(s[-1], val[u]) for u, s in train.items() if s and s[-1] != val[u]]


def _heldout_first(train, val):
    return [(s[0], val[u]) for u, s in train.items() if s and s[0] != val[u]]


def _heldout_keep_same(train, val):
    return [(s[-1], val[u]) for u, s in train.items() if s]


def _heldout_reversed(train, val):
    return [(val[u], s[-1]) for u, s in train.items() if s and s[-1] != val[u]]


def _heldout_by_the_library(train, val):
    from rqvae_lib.course import collab
    from rqvae_lib.data.amazon import LeaveOneOut

    return [tuple(p) for p in collab.heldout_pairs(LeaveOneOut(train, val, dict(val))).tolist()]


SOLUTIONS.update({"08-heldout-pairs": my_heldout_pairs})
WRONG_ANSWERS.update(
    {
        "08-heldout-pairs": [
            (_heldout_first, "last training item"),
            (_heldout_keep_same, "Leave out"),
            (_heldout_reversed, "first"),
            (_heldout_by_the_library, LIBRARY_HINT),
        ]
    }
)
