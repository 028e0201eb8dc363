"""Near-duplicates: one picture, edited. The same image re-encoded, resized, lightly cropped or with its
brightness or contrast changed is a near-duplicate of it; two distinct objects that merely look alike (two
pairs of trousers, two scans of the digit 1) are not. A fixed cosine cannot tell these apart: on 28 px
Fashion-MNIST distinct trousers reach the cosine of a JPEG re-encode, and a cosine of 0.95 joined 1,632 of
1,797 8x8 digit scans into 7 chained groups. Nor does the embedding alone find every copy: with the bundled
CNN, a 28 px garment saved 15 % brighter on a grey instead of a black ground fell to cosine 0.81 with its
original, outside its 20 nearest neighbours. So the call is made on the pixels, among candidates from the
run's graphs (nothing is searched here, so it scales with the graph, not with N squared):

1. Candidates: each image's neighbours in the embedding graph and in the raw-pixel graph.
2. The pixels agree: the two small copies kept by extraction, in grey with their mean and contrast removed (so
   brightness and contrast edits do not count), correlate at ``floor`` or more, and above the set's median
   nearest-neighbour correlation (a cut inside the bulk of the set's similarities calls nothing), as kept, halved, or with one
   side's centre zoomed by 4, 8 or 12 % (a light centred crop; a resize moves edges by a pixel and halving
   forgives that, not another shape).
3. The pair stands out from the image's ordinary neighbours (a local ratio test, as in Lowe's matching of
   keypoints): 1 - correlation is at most ``ratio`` times the image's scale, at both ends. The scale is the
   set's own, image by image: 1 - the correlation with its ``scale_k``-th most correlated candidate, or, when
   the set's median nearest neighbour is closer than that, the geometric mean of the two. In a clump of
   look-alikes many neighbours are about as close and none stands out; in a sparse set two look-alikes stand
   out from the rest, but less from what nearest neighbours in this set usually reach; an edited copy is far
   closer than either. (The set's scale alone missed a 28 px photo resized and re-encoded as JPEG 70, whose
   own neighbours are 16 times farther: ratio 0.155.)
4. Nothing in it changed: an edit changes the whole picture a little, not one part of it a lot. After the
   pair's best alignment and a monotone tone match (brightness, contrast and clipping undone), a pair whose
   difference sits in one window of a quarter of the side (``local_share`` of it or more) and is strong there
   (``local_level`` grey levels RMS or more) is one photograph with something in it changed: on all 70,000
   Fashion-MNIST images, one garment photographed once and sold with different chest prints correlates at
   0.998-0.999, closer than most re-encodes. Planted edits (brighter, contrast, JPEG 70, resized, cropped) put
   at most 45 % of their difference in one such window; the print swaps put 75-94 % there.
5. No chaining: groups are stars. An image heads a group and every member passes with it, not only with some
   other member.
A picture with ``scale_k`` - 1 copies or more is missed (its ordinary neighbour is a copy); byte-identical
files are listed apart by their hashes anyway.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

FLAT = 1.0  # a picture whose grey levels vary less than this (std, of 255) has nothing to compare
BLOCK = 4096  # images whose candidate correlations are computed at a time (memory stays bounded)


@dataclass(frozen=True)
class Rule:
    """The thresholds of a near-duplicate call, stated on the slide beside its result."""

    floor: float = 0.9  # grey-pixel correlation of a copy with its original, at least
    ratio: float = 0.15  # (1 - pair correlation) / (1 - correlation with the scale_k-th candidate), at most
    scale_k: int = 5  # which candidate sets an image's ordinary correlation
    candidates: int = 15  # neighbours taken from each graph
    lookalike: float = 0.99  # pairs this correlated that are not copies are listed apart as look-alikes
    local_share: float = 0.7  # share of a pair's difference in one quarter-side window: a local change, at least
    local_level: float = 5.0  # RMS grey levels (of 255) in that window for the change to count

    def text(self) -> dict:
        return asdict(self)


def grey(pixels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The small copies of ``rows`` in grey, float32 (n, side, side): read in sorted order, averaged over the
    channels as they are (no float copy of all three, which was 860 MB for 70,000 rows at 32 px)."""
    order = np.argsort(rows, kind="stable")
    picture = np.asarray(pixels[rows[order]])
    averaged = picture.mean(axis=3, dtype=np.float32) if picture.ndim == 4 else picture.astype(np.float32)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return averaged[inverse]


def unit(pictures: np.ndarray, side: int) -> np.ndarray:
    """Grey pictures at ``side`` px (area-averaged by whole factors), as rows with zero mean and unit length;
    a flat picture is all zeros and so matches nothing: the black corners of a retina scan (grey-level std
    0.05-0.12) otherwise correlate through their faint noise."""
    factor = pictures.shape[1] // side
    if factor > 1:
        n = len(pictures)
        pictures = pictures[:, :side * factor, :side * factor].reshape(n, side, factor, side, factor).mean(axis=(2, 4))
    flat = pictures.reshape(len(pictures), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    varied = norm >= FLAT * np.sqrt(flat.shape[1])  # std of its grey levels >= FLAT
    return np.divide(flat, norm, out=np.zeros_like(flat), where=varied)


def zoomed(pictures: np.ndarray, zoom: float) -> np.ndarray:
    """The pictures with their centre zoomed by ``zoom``: what a centred crop of ``1 - 1 / zoom`` does."""
    import cv2

    size = pictures.shape[1]
    warp = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), 0, zoom)
    return np.stack([cv2.warpAffine(p, warp, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for p in pictures]) if len(pictures) else pictures


ZOOMS = (1.04, 1.08, 1.12)  # a crop of 2, 4 or 6 % off each side


def sizes(side: int) -> tuple[int, ...]:
    """As kept, and halved: a resize or re-encode blurs edges, and halving forgives that, not another shape."""
    return (side, side // 2) if side >= 8 else (side,)


def candidate_table(graphs: list[np.ndarray], width: int) -> np.ndarray:
    """Each row's candidates: its first ``width`` neighbours in each graph, repeats and itself as -1."""
    parts = [g[:, :width] for g in graphs if g.size]
    table = np.concatenate(parts, axis=1).astype(np.int64)
    table = np.sort(table, axis=1)
    repeat = np.zeros(table.shape, bool)
    repeat[:, 1:] = table[:, 1:] == table[:, :-1]
    table[repeat | (table == np.arange(len(table))[:, None])] = -1
    return table


def correlations(pixels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Grey-pixel correlation of each row with each of its candidates, -inf where there is none: the best of
    the row's picture as kept and zoomed by each of ``ZOOMS`` against the candidate as kept, at each of
    ``sizes``. A pair listed both ways takes the better of the two, so either side may be the cropped one.
    Block by block: memory grows with the block, and each picture is zoomed once, as a row."""
    found = np.full(table.shape, -np.inf, np.float32)
    for start in range(0, len(table), BLOCK):
        rows = np.arange(start, min(len(table), start + BLOCK))
        block = table[rows]
        needed = np.unique(block[block >= 0])
        position = np.searchsorted(needed, np.where(block >= 0, block, needed[0] if len(needed) else 0))
        mine_pictures, theirs_pictures = grey(pixels, rows), grey(pixels, needed)
        for zoom in (1.0, *ZOOMS):
            mine_zoomed = mine_pictures if zoom == 1.0 else zoomed(mine_pictures, zoom)
            for side in sizes(pixels.shape[1]):
                mine, theirs = unit(mine_zoomed, side), unit(theirs_pictures, side)
                value = np.stack([np.einsum("rd,rd->r", mine, theirs[position[:, c]])  # a column at a time: the
                                  for c in range(block.shape[1])], axis=1)  # (rows, candidates, d) never exists
                found[rows] = np.maximum(found[rows], np.where(block >= 0, value, -np.inf))
    return symmetric(table, found)


def symmetric(table: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Each pair listed both ways (b among a's candidates and a among b's) gets the higher of its two values."""
    n, width = table.shape
    rows = np.repeat(np.arange(n), width)
    cols = table.ravel()
    listed = np.flatnonzero(cols >= 0)
    key = rows[listed] * n + cols[listed]
    order = np.argsort(key)
    where = np.clip(np.searchsorted(key[order], cols[listed] * n + rows[listed]), 0, max(0, len(key) - 1))
    flat = value.ravel().copy()
    if len(key):
        both = key[order][where] == cols[listed] * n + rows[listed]
        other = flat[listed][order][where]
        flat[listed[both]] = np.maximum(flat[listed[both]], other[both])
    return flat.reshape(value.shape)


def tone_matched(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Each source picture's grey levels replaced, in rank order, by its target's: the monotone tone curve
    that best maps one onto the other (a brightness or contrast edit, clipping included, is undone)."""
    n = len(source)
    flat = source.reshape(n, -1)
    matched = np.empty_like(flat)
    np.put_along_axis(matched, np.argsort(flat, axis=1, kind="stable"), np.sort(target.reshape(n, -1), axis=1), axis=1)
    return matched.reshape(source.shape)


def best_aligned(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pair as the correlation call saw it at its best: one side's centre zoomed by one of ``ZOOMS``
    (or none), whichever side and zoom correlate most. Returns the two aligned stacks."""
    side = first.shape[1]
    best = np.full(len(first), -np.inf, np.float32)
    left, right = first.copy(), second.copy()
    for zoom in (1.0, *ZOOMS):
        for moved, fixed, swap in ((first, second, False), (second, first, True)):
            if zoom == 1.0 and swap:
                continue
            candidate = moved if zoom == 1.0 else zoomed(moved, zoom)
            value = np.einsum("nd,nd->n", unit(candidate, side), unit(fixed, side))
            better = value > best
            best[better] = value[better]
            left[better] = (fixed if swap else candidate)[better]
            right[better] = (candidate if swap else fixed)[better]
    return left, right


def local_change(pixels: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each pair (a, b): the share of its tone-matched difference that falls in its worst window of a
    quarter of the side, and the RMS difference there in grey levels. An edit spreads its difference over the
    picture; a changed print, a swapped label or an added object puts it in one place."""
    share, level = np.zeros(len(a), np.float32), np.zeros(len(a), np.float32)
    for start in range(0, len(a), BLOCK):
        part = slice(start, start + BLOCK)
        first, second = best_aligned(grey(pixels, a[part]), grey(pixels, b[part]))
        residual = np.minimum(np.abs(tone_matched(first, second) - second), np.abs(tone_matched(second, first) - first)) ** 2
        width = max(2, first.shape[1] // 4)
        windows = np.lib.stride_tricks.sliding_window_view(residual, (width, width), axis=(1, 2)).sum(axis=(-1, -2))
        worst = windows.reshape(len(windows), -1).max(axis=1)
        share[part] = worst / np.maximum(residual.reshape(len(residual), -1).sum(axis=1), 1e-6)
        level[part] = np.sqrt(worst / width ** 2)
    return share, level


def star_groups(a: np.ndarray, b: np.ndarray) -> list[list[int]]:
    """Groups from accepted pairs without chaining: the image with most accepted pairs (then the lowest index)
    heads a group of itself and its partners not yet grouped; repeat. Head first, then the rest in order."""
    partners: dict[int, set[int]] = {}
    for x, y in zip(a.tolist(), b.tolist()):
        partners.setdefault(x, set()).add(y)
        partners.setdefault(y, set()).add(x)
    taken: set[int] = set()
    groups = []
    for head in sorted(partners, key=lambda i: (-len(partners[i]), i)):
        if head in taken:
            continue
        members = sorted(partners[head] - taken)
        if members:
            groups.append([head, *members])
            taken |= {head, *members}
    return sorted(groups, key=lambda g: (-len(g), g[0]))


GROUP_CHECKED = 64  # members of a group compared with each other for local changes (the head's closest)


def variants_apart(groups: list[list[int]], pixels: np.ndarray, rule: Rule,
                   closeness: dict[tuple[int, int], float]) -> tuple[list[list[int]], int]:
    """An edit of one variant heads a group that holds both the variant and its sibling (the same photograph
    with another print): the edit's own change dilutes the print's, so the sibling passes with the head. The
    two members are a local change of each other, though; the one less correlated with the head leaves.
    Returns the groups and how many members left. Checks the ``GROUP_CHECKED`` members closest to the head."""
    kept, removed = [], 0
    for head, *members in groups:
        def near(m):
            return closeness.get((min(head, m), max(head, m)), -1.0)
        checked = sorted(members, key=lambda m: -near(m))[:GROUP_CHECKED]
        a, b = np.triu_indices(len(checked), 1)
        first, second = np.array(checked)[a], np.array(checked)[b]
        share, level = local_change(pixels, first, second) if len(a) else (np.zeros(0), np.zeros(0))
        out = {int(y) if near(x) >= near(y) else int(x)
               for x, y, s, l in zip(first, second, share, level) if s >= rule.local_share and l >= rule.local_level}
        removed += len(out)
        rest = [m for m in members if m not in out]
        if rest:
            kept.append([head, *rest])
    return sorted(kept, key=lambda g: (-len(g), g[0])), removed


def find(graphs: list[np.ndarray], pixels: np.ndarray, rule: Rule = Rule()) -> dict:
    """Near-duplicate groups and, apart, look-alike pairs (correlating at ``rule.lookalike`` or more without
    passing as copies), with what the call rests on: each image's ordinary correlation (its median over the
    set) and how many pairs each check turned away."""
    table = candidate_table(graphs, rule.candidates)
    corr = correlations(pixels, table)
    ranked = -np.sort(-corr, axis=1)
    valid = np.isfinite(ranked).sum(axis=1)
    column = np.clip(np.minimum(rule.scale_k, valid) - 1, 0, None)
    ordinary = np.where(valid > 0, ranked[np.arange(len(ranked)), column], -1.0)
    typical = float(np.median(1.0 - ranked[valid > 0, 0])) if (valid > 0).any() else 1.0
    local = 1.0 - ordinary
    scale = np.maximum(np.sqrt(local * np.minimum(local, typical)), 1e-6)  # drawn towards the set's, never past
    rows, cols = np.nonzero(np.isfinite(corr))
    other, value = table[rows, cols], corr[rows, cols]
    keep = rows < other  # each pair once (the correlation is symmetric)
    rows, other, value = rows[keep], other[keep], value[keep]
    close = (value >= rule.floor) & (value > 1.0 - typical)  # never inside the bulk: above the median nearest
    stands_out = (1.0 - value) <= rule.ratio * np.minimum(scale[rows], scale[other])
    copy = close & stands_out
    share, level = local_change(pixels, rows[copy], other[copy])
    changed = np.zeros_like(copy)
    changed[np.flatnonzero(copy)] = (share >= rule.local_share) & (level >= rule.local_level)
    copy &= ~changed
    groups, split = variants_apart(star_groups(rows[copy], other[copy]), pixels, rule,
                                   {(int(x), int(y)): float(v) for x, y, v in zip(rows[copy], other[copy], value[copy])})
    grouped = {i for g in groups for i in g}
    alike = (value >= rule.lookalike) & ~copy
    lookalikes = sorted((float(v), int(x), int(y)) for x, y, v in zip(rows[alike], other[alike], value[alike])
                        if x not in grouped and y not in grouped)[::-1]
    return {"groups": groups, "lookalikes": [(x, y, round(v, 4)) for v, x, y in lookalikes],
            "median_ordinary": round(float(np.median(ordinary)), 4), "median_nearest": round(1.0 - typical, 4),
            "lowest_copy": round(float(value[copy].min()), 4) if copy.any() else None,
            "pairs": int(len(value)),
            "below_floor": int((~close).sum()), "not_standing_out": int((close & ~stands_out).sum()),
            "local_change": int(changed.sum()), "variants_split": split,
            "rule": rule.text()}
