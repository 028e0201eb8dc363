"""The near-duplicate finder on its own: edited copies of real images are grouped with their originals, and
distinct images that look alike (a clump of Fashion-MNIST trousers, 8x8 digit scans) are not; groups never chain."""

import cv2
import numpy as np
import pytest

from bench import planted
from pipeline.imaging import images
from pipeline.analyses import near_duplicates as nd


def pixel_graph(pixels: np.ndarray, k: int) -> np.ndarray:
    """Exact cosine neighbours of the small copies (the test's stand-in for the run's graphs)."""
    flat = pixels.reshape(len(pixels), -1).astype(np.float32)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    sim = flat @ flat.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1)[:, :k]


def kept(picture: np.ndarray) -> np.ndarray:
    """What extraction keeps of an image: the whole image squeezed to 32 px, in colour."""
    rgb = cv2.cvtColor(picture, cv2.COLOR_GRAY2RGB) if picture.ndim == 2 else picture
    return images.small_copy(rgb, 32)


@pytest.fixture(scope="module")
def garments_with_copies(fashion):
    """600 real Fashion-MNIST images, 60 a class (among them distinct trousers whose pixels correlate at
    0.99: the case a fixed cosine got wrong), and one copy of each of five of them, edited five ways (saved
    as the file would be, then read back)."""
    from pipeline import demo

    pictures, labels = fashion
    originals = pictures[demo.stratified_indices(labels, 60, seed=3)]
    copies = []
    for n, kind in enumerate(planted.EDITS):
        image, suffix = planted.edit(originals[n * 97], kind)
        params = [cv2.IMWRITE_JPEG_QUALITY, 70] if suffix == ".jpg" else []
        copies.append(cv2.imdecode(cv2.imencode(suffix, image, params)[1], cv2.IMREAD_GRAYSCALE))
    pixels = np.stack([kept(p) for p in list(originals) + copies])
    truth = [(n * 97, len(originals) + n) for n in range(len(copies))]
    return pixels, truth


def test_edited_copies_join_their_originals_and_look_alikes_do_not(garments_with_copies):
    pixels, truth = garments_with_copies
    found = nd.find([pixel_graph(pixels, 15)], pixels)
    groups = [set(g) for g in found["groups"]]
    for original, copy in truth:
        assert any({original, copy} <= g for g in groups), (original, copy, found["groups"])
    planted_images = {i for pair in truth for i in pair}
    strays = [g for g in groups if not g & planted_images]
    assert len(strays) <= 1, strays  # measured: none
    assert found["lookalikes"], "garments this alike are listed apart as look-alikes"


def test_a_fixed_floor_alone_would_call_look_alikes_copies(garments_with_copies):
    """Why the ratio test: with it off (any pair above the floor counts), many distinct garments become 'copies'."""
    pixels, _ = garments_with_copies
    loose = nd.find([pixel_graph(pixels, 15)], pixels, nd.Rule(ratio=1e9))
    strict = nd.find([pixel_graph(pixels, 15)], pixels)
    assert sum(map(len, loose["groups"])) > 5 * sum(map(len, strict["groups"]))


def test_digit_scans_are_not_called_copies():
    """1,797 8x8 handwritten digits upsampled: low-detail scans, many nearly the same; a cosine of 0.95 once
    joined 1,632 of them. At most 2 % may be called near-duplicates (measured: none, from the pixel graph alone)."""
    from sklearn.datasets import load_digits

    scans = load_digits().images
    pixels = np.stack([kept(cv2.resize(255 - (s * 16).clip(0, 255).astype(np.uint8), (32, 32),
                                       interpolation=cv2.INTER_CUBIC)) for s in scans])
    found = nd.find([pixel_graph(pixels, 15)], pixels)
    called = sum(map(len, found["groups"]))
    assert called <= 0.02 * len(scans), (called, found["groups"][:5])


def test_groups_are_stars_not_chains():
    """a-b, b-c, c-d accepted: b heads a star {a, b, c}; d's only partner is taken, so d stays out."""
    groups = nd.star_groups(np.array([0, 1, 2]), np.array([1, 2, 3]))
    assert groups == [[1, 0, 2]]
    accepted = {(0, 1), (1, 2), (2, 3)}
    for head, *members in groups:
        assert all((min(head, m), max(head, m)) in accepted for m in members), "each member pairs with the head"


def test_candidates_drop_repeats_and_self():
    table = nd.candidate_table([np.array([[1, 2], [0, 2], [0, 1]]), np.array([[2, 0], [1, 0], [0, 1]])], 2)
    assert [sorted(r[r >= 0].tolist()) for r in table] == [[1, 2], [0, 2], [0, 1]]


def test_a_flat_image_matches_nothing():
    flat = np.full((3, 32, 32, 3), 128, np.uint8)
    assert np.all(nd.unit(nd.grey(flat, np.arange(3)), 32) == 0)
    assert nd.find([np.array([[1, 2], [0, 2], [0, 1]])], flat)["groups"] == []


def test_a_pair_listed_both_ways_takes_the_better_value():
    table = np.array([[1, -1], [0, 2], [-1, -1]])
    value = np.array([[0.5, -np.inf], [0.75, 0.25], [-np.inf, -np.inf]], np.float32)
    assert nd.symmetric(table, value).tolist() == [[0.75, -np.inf], [0.75, 0.25], [-np.inf, -np.inf]]


def test_nearly_flat_pictures_match_nothing():
    """Black tiles with faint noise (std 0.1 grey levels, like a retina scan's corners) are not copies of each other."""
    rng = np.random.default_rng(0)
    dark = np.zeros((4, 32, 32, 3), np.uint8)
    dark[:, :, 20:] = 1  # the same faint edge in each, a few pixels flipped apart
    dark[rng.random(dark.shape[:3]) < 0.02] ^= 1
    graph = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
    assert nd.find([graph], dark)["groups"] == []


PRINT_SWAPS = ((5081, 9664), (32140, 39882), (27857, 55613), (56004, 69867))  # found in all 70,000, looked at


@pytest.fixture(scope="module")
def print_swaps():
    """Pairs from all 70,000 Fashion-MNIST images (train, then test) that are one garment photograph sold with
    different chest prints: they correlate at 0.998-0.999, closer than most re-encodes."""
    from pipeline import demo

    every = np.concatenate([demo.read_idx("train-images-idx3-ubyte"), demo.read_idx("t10k-images-idx3-ubyte")])
    return [(every[a], every[b]) for a, b in PRINT_SWAPS]


def edited_pairs(pictures):
    """Each picture beside each of its five planted edits, saved and read back as a file would be."""
    pairs = []
    for picture in pictures:
        for kind in planted.EDITS:
            image, suffix = planted.edit(picture, kind)
            params = [cv2.IMWRITE_JPEG_QUALITY, 70] if suffix == ".jpg" else []
            pairs.append((picture, cv2.imdecode(cv2.imencode(suffix, image, params)[1], cv2.IMREAD_GRAYSCALE)))
    return pairs


def flagged(pairs, rule=nd.Rule()):
    pixels = np.stack([kept(p) for pair in pairs for p in pair])
    share, level = nd.local_change(pixels, np.arange(0, len(pixels), 2), np.arange(1, len(pixels), 2))
    return (share >= rule.local_share) & (level >= rule.local_level), share, level


def test_a_changed_print_is_a_local_change_and_an_edit_is_not(print_swaps):
    swapped, share, level = flagged(print_swaps)
    assert swapped.all(), (share, level)
    edited, share, level = flagged(edited_pairs([a for a, _ in print_swaps] + [b for _, b in print_swaps]))
    assert not edited.any(), (share[edited], level[edited])


@pytest.mark.parametrize("swap", range(len(PRINT_SWAPS)))
def test_a_changed_print_is_not_grouped_but_edits_of_it_are(garments_with_copies, print_swaps, swap):
    """A garment, its sibling with another print and two edits of the garment (each swap its own two of the
    five kinds; with three, one edit is missed with or without the sibling: the ratio test's known limit)
    among 600 others: the edits
    join the garment, and the sibling joins no group of theirs, even where an edit heads the group (the
    edit's own change dilutes the print's; the sibling is a local change of the garment, so it leaves)."""
    pixels, _ = garments_with_copies
    original, sibling = print_swaps[swap]
    edits = [edited for _, edited in edited_pairs([original])]
    edits = [edits[(2 * swap + n) % len(edits)] for n in range(2)]
    first = len(pixels)
    pixels = np.concatenate([pixels, np.stack([kept(p) for p in (original, sibling, *edits)])])
    found = nd.find([pixel_graph(pixels, 15)], pixels)
    group = next(set(g) for g in found["groups"] if first in g)
    assert set(range(first + 2, len(pixels))) <= group, found["groups"]
    assert all(first + 1 not in g for g in found["groups"] if set(g) & group), found["groups"]
