"""The toy domain: renders of the built-in body painted from their exact IUV with a captioned outfit.

This is what ``embedded:toy`` is trained on and what its quality is measured against. An outfit names a
colour from :data:`PALETTE` for three garment regions (shirt, trousers, shoes) and a shirt pattern
(striped, dotted or plain); skin tone, hair colour and the background vary but are not named. The
caption grammar is fixed::

    a person in a {shirt colour} [striped|dotted] shirt, {trousers colour} trousers and {shoes colour} shoes

Regions come from the DensePose part index ``I`` of every pixel (:data:`GARMENT_PARTS`), so the same
regions can be read back from a generated frame through the render's IUV. Patterns live on the body's
rest-pose surface (stripes along the body's height, dots on a 3D lattice) with a random phase per
sample, so they move with the body. Shading is Lambertian from the posed surface normals, lit from the
camera's side.

Arrays: ``face_id (H, W)`` int32 (-1 = background), ``barycentric (H, W, 3)``, ``iuv (H, W, 3)`` uint8;
painted images ``(H, W, 3)`` uint8.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

#: The named colours (sRGB 0..255). Few and far apart, so a garment's mean colour names its caption word.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (205, 35, 35),
    "green": (40, 155, 55),
    "blue": (40, 70, 200),
    "yellow": (235, 200, 40),
    "white": (235, 235, 230),
    "black": (28, 28, 30),
}
PATTERNS = ("plain", "striped", "dotted")
GARMENTS = ("shirt", "trousers", "shoes")
#: DensePose parts of each named garment (torso and upper arms: a short-sleeved shirt).
GARMENT_PARTS: dict[str, tuple[int, ...]] = {
    "shirt": (1, 2, 15, 16, 17, 18),
    "trousers": (7, 8, 9, 10, 11, 12, 13, 14),
    "shoes": (5, 6),
}
SKIN_PARTS = (3, 4, 19, 20, 21, 22)
HEAD_PARTS = (23, 24)
SKIN_TONES = ((236, 188, 150), (198, 134, 96), (120, 80, 56))
HAIR_COLOURS = ((30, 22, 18), (96, 60, 32), (214, 178, 110))

#: Motions never seen in training: the quality bar is measured on them (and on held-out colours).
HELD_OUT_MOTIONS = ("kick", "dance")

# Pattern geometry on the rest-pose surface, in metres (the body is 1.63 m; at 256 px it is ~200 px,
# so stripes are ~15 px wide per period and dots ~9 px across: coarse enough for an 8x VAE).
STRIPE_PERIOD_M = 0.12
STRIPE_DUTY = 0.45
DOT_SPACING_M = 0.12
DOT_RADIUS_M = 0.035
SHADE_AMBIENT = 0.72


@dataclass(frozen=True)
class Outfit:
    """One sample's appearance: named garment colours and pattern, unnamed skin, hair, background."""

    shirt: str
    trousers: str
    shoes: str
    pattern: str
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    background: tuple[tuple[int, int, int], tuple[int, int, int]]  # top and bottom colour (equal = plain)

    def caption(self) -> str:
        return caption(self.shirt, self.pattern, self.trousers, self.shoes)

    @property
    def colours(self) -> tuple[str, str, str]:
        return (self.shirt, self.trousers, self.shoes)


def caption(shirt: str, pattern: str, trousers: str, shoes: str) -> str:
    """The caption grammar (see the module docstring)."""
    pattern_word = "" if pattern == "plain" else f"{pattern} "
    return f"a person in a {shirt} {pattern_word}shirt, {trousers} trousers and {shoes} shoes"


def caption_words() -> list[str]:
    """Every word the grammar can produce (the toy tokenizer's vocabulary)."""
    words = {"a", "person", "in", "shirt", "trousers", "and", "shoes", ","}
    words |= set(PALETTE) | {p for p in PATTERNS if p != "plain"}
    return sorted(words)


def caption_problem(text: str) -> str | None:
    """Why ``text`` is not a caption of the grammar (None when it is one): a garment named twice or with two
    colours, a pattern on another garment, a missing garment, or the words in another order. The toy model
    was trained on the grammar only; anything else gives an outfit the prompt did not ask for."""
    import re

    tokens = re.findall(r"[a-z]+|[^\w\s]", text.lower())
    colours, patterns = set(PALETTE), {p for p in PATTERNS if p != "plain"}
    named: dict[str, list[str]] = {garment: [] for garment in GARMENTS}
    for index, token in enumerate(tokens):
        if token in GARMENTS:
            if named[token]:
                return f"it names the {token} twice"
            before, back = [], index - 1
            while back >= 0 and (tokens[back] in colours or tokens[back] in patterns):
                before.append(tokens[back])
                back -= 1
            named[token] = [word for word in before if word in colours] or ["(none)"]
            if len(named[token]) > 1:
                return f"two colours for the {token} ({', '.join(reversed(named[token]))})"
            if token != "shirt" and any(word in patterns for word in before):
                return f"a pattern on the {token}: only the shirt has one"
    missing = [garment for garment in GARMENTS if named[garment] in ([], ["(none)"])]
    if missing:
        return f"no colour for the {', '.join(missing)}"
    shirt, trousers, shoes = (named[garment][0] for garment in GARMENTS)
    pattern = next((t for t in tokens if t in patterns), "plain")
    expected = caption(shirt, pattern, trousers, shoes)
    if tokens != re.findall(r"[a-z]+|[^\w\s]", expected):
        return f"the words are not in the grammar's order (expected {expected!r})"
    return None


def held_out_combinations() -> list[tuple[str, str, str]]:
    """Colour combinations (shirt, trousers, shoes) never seen in training: a fixed 1 in 6 of all 216.

    Chosen as the triples whose colour indices sum to 0 mod 6, so every colour still appears in
    training on every garment, and every colour appears on every garment in the held-out set.
    """
    names = list(PALETTE)
    return [
        (a, b, c)
        for a, b, c in itertools.product(names, repeat=3)
        if (names.index(a) + names.index(b) + names.index(c)) % 6 == 0
    ]


def _muted_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    grey = rng.uniform(0.45, 0.85)
    tint = rng.normal(0.0, 0.06, size=3)
    return tuple(int(v) for v in np.clip((grey + tint) * 255, 0, 255))


def random_outfit(rng: np.random.Generator, held_out: bool = False) -> Outfit:
    """A random outfit; its colours are a held-out combination iff ``held_out``."""
    names = list(PALETTE)
    excluded = set(held_out_combinations())
    while True:
        colours = tuple(names[i] for i in rng.integers(0, len(names), size=3))
        if (colours in excluded) == held_out:
            break
    top = _muted_colour(rng)
    bottom = top if rng.random() < 0.5 else _muted_colour(rng)
    return Outfit(
        shirt=colours[0],
        trousers=colours[1],
        shoes=colours[2],
        pattern=PATTERNS[int(rng.integers(0, len(PATTERNS)))],
        skin=SKIN_TONES[int(rng.integers(0, len(SKIN_TONES)))],
        hair=HAIR_COLOURS[int(rng.integers(0, len(HAIR_COLOURS)))],
        background=(top, bottom),
    )


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit area-weighted vertex normals ``(V, 3)`` of one posed mesh ``(V, 3)``."""
    v = np.asarray(vertices, dtype=np.float64)
    tri = v[faces]
    face_normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(v)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normal)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def _at_pixels(values: np.ndarray, faces: np.ndarray, face_id: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Per-vertex ``values (V, C)`` interpolated at the foreground pixels ``(N, C)``."""
    fg = face_id >= 0
    corners = faces[face_id[fg]]  # (N, 3)
    weights = bary[fg].astype(np.float64)  # (N, 3)
    return np.einsum("nk,nkc->nc", weights, values[corners])


def garment_map(iuv: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks ``(..., H, W)`` of the named garment regions, from the IUV's part index."""
    part = np.asarray(iuv)[..., 0]
    return {name: np.isin(part, parts) for name, parts in GARMENT_PARTS.items()}


def paint(
    outfit: Outfit,
    iuv: np.ndarray,
    face_id: np.ndarray,
    barycentric: np.ndarray,
    rest_vertices: np.ndarray,
    normals: np.ndarray,
    faces: np.ndarray,
    light: np.ndarray,
    head_joint: np.ndarray,
    phase: np.ndarray,
) -> np.ndarray:
    """Paint one frame ``(H, W, 3)`` uint8.

    ``rest_vertices (V, 3)`` give every pixel its rest-pose surface point (pattern coordinates, hair);
    ``normals (V, 3)`` are the posed vertex normals and ``light (3,)`` the unit direction towards the light
    in the same frame; ``head_joint (3,)`` is the rest head joint; ``phase (3,)`` in [0, 1) shifts the
    pattern.
    """
    height, width = face_id.shape
    top, bottom = (np.asarray(c, dtype=np.float64) for c in outfit.background)
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    image = np.broadcast_to((1 - ramp) * top + ramp * bottom, (height, width, 3)).copy()
    fg = face_id >= 0
    if not fg.any():
        return image.round().astype(np.uint8)
    part = iuv[..., 0][fg]
    rest = _at_pixels(rest_vertices, faces, face_id, barycentric)
    normal = _at_pixels(normals, faces, face_id, barycentric)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    colour = np.zeros((len(part), 3))
    for name in GARMENTS:
        colour[np.isin(part, GARMENT_PARTS[name])] = PALETTE[getattr(outfit, name)]
    colour[np.isin(part, SKIN_PARTS)] = outfit.skin
    head = np.isin(part, HEAD_PARTS)
    colour[head] = outfit.skin
    hair = head & (
        (rest[:, 1] > head_joint[1] + 0.06)
        | (rest[:, 2] < head_joint[2] - 0.01) & (rest[:, 1] > head_joint[1])
    )
    colour[hair] = outfit.hair
    shirt = np.isin(part, GARMENT_PARTS["shirt"])
    if outfit.pattern == "striped":
        on = ((rest[:, 1] / STRIPE_PERIOD_M + phase[1]) % 1.0) < STRIPE_DUTY
    elif outfit.pattern == "dotted":
        cell = (rest / DOT_SPACING_M + phase) % 1.0 - 0.5
        on = np.linalg.norm(cell, axis=1) * DOT_SPACING_M < DOT_RADIUS_M
    else:
        on = np.zeros(len(part), dtype=bool)
    marked = shirt & on
    base = np.asarray(PALETTE[outfit.shirt], dtype=np.float64)
    # Dark colours get light marks, light colours dark ones; the shirt's mean stays nearest its own colour.
    mark = base * 0.55 if base.mean() > 60 else base + (255 - base) * 0.35
    colour[marked] = mark
    shade = SHADE_AMBIENT + (1 - SHADE_AMBIENT) * np.clip(normal @ light, 0.0, 1.0)
    image[fg] = colour * shade[:, None]
    return np.clip(image, 0, 255).round().astype(np.uint8)


def nearest_palette_colour(rgb: np.ndarray) -> str:
    """Name of the palette colour nearest (Euclidean, sRGB) to ``rgb (3,)``."""
    names = list(PALETTE)
    distances = [np.linalg.norm(np.asarray(rgb, dtype=np.float64) - PALETTE[n]) for n in names]
    return names[int(np.argmin(distances))]


def garment_colours(image: np.ndarray, iuv: np.ndarray, min_pixels: int = 12) -> dict[str, np.ndarray | None]:
    """Mean colour ``(3,)`` of each named garment region of a frame (None when it has < min_pixels)."""
    out: dict[str, np.ndarray | None] = {}
    for name, mask in garment_map(iuv).items():
        out[name] = image[mask].astype(np.float64).mean(axis=0) if mask.sum() >= min_pixels else None
    return out
