"""A recipe for several bands of one field: one :class:`~.recipe.Recipe` per band, fitted on that
band with its own noise map, the channels concatenated band after band (g's, then r's, …).

A model that takes bands as channels saves this recipe: it names the bands and their order, so the
model can refuse an input of other bands. The input is a stack with ``planes`` (one 2-D array-like
per band, :class:`napari_galseg.frames.bands.BandStack`) to fit on, and ``(bands, h, w)`` windows to
apply to.
"""
from __future__ import annotations

import numpy as np

from .recipe import Recipe

FORMAT = "napari-galseg/band-recipe"
VERSION = 1


def _plane(stack, b: int):
    """Band ``b`` of a stack: its 2-D array-like (``planes``) or ``stack[b]`` of a 3-D array."""
    if stack is None:
        return None
    return stack.planes[b] if hasattr(stack, "planes") else stack[b]


class BandRecipe:
    """One recipe per band; ``apply(image, rms)`` on ``(bands, h, w)`` arrays gives ``(Σ C, h, w)``."""

    def __init__(self, bands, recipes, name: str = ""):
        self.bands = tuple(str(b) for b in bands)
        self.recipes = [r if isinstance(r, Recipe) else Recipe.from_dict(r) for r in recipes]
        if not self.bands or len(self.bands) != len(self.recipes):
            raise ValueError(f"a band recipe needs one recipe per band, got {len(self.bands)} band(s) and "
                             f"{len(self.recipes)} recipe(s)")
        if len(set(self.bands)) != len(self.bands):
            raise ValueError(f"band names must differ, got {', '.join(self.bands)}")
        self.name = name or f"{self.recipes[0].name or 'recipe'} per band"

    @classmethod
    def per_band(cls, bands, recipe: Recipe) -> BandRecipe:
        """``recipe`` for each of ``bands`` (fitted later on each band)."""
        return cls(bands, [recipe.copy() for _ in bands])

    @property
    def n_channels(self) -> int:
        return sum(r.n_channels for r in self.recipes)

    @property
    def channel_names(self) -> list[str]:
        return [f"{b}:{n}" for b, r in zip(self.bands, self.recipes) for n in r.channel_names]

    @property
    def needs_rms(self) -> bool:
        return any(r.needs_rms for r in self.recipes)

    @property
    def is_fitted(self) -> bool:
        return all(r.is_fitted for r in self.recipes)

    def __repr__(self) -> str:
        return f"BandRecipe({', '.join(self.bands)}: {self.recipes[0]!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, BandRecipe) and self.to_dict() == other.to_dict()

    def copy(self) -> BandRecipe:
        return BandRecipe.from_dict(self.to_dict())

    def unfitted(self) -> BandRecipe:
        return BandRecipe(self.bands, [r.unfitted() for r in self.recipes], self.name)

    def fit(self, image, rms=None) -> BandRecipe:
        """Each band's recipe fitted on that band (and its noise map)."""
        self._check(image)
        return BandRecipe(self.bands, [r.fit(_plane(image, b), _plane(rms, b)) for b, r in enumerate(self.recipes)],
                          self.name)

    def apply(self, image, rms=None) -> np.ndarray:
        """float32 ``(Σ C, h, w)`` of ``(bands, h, w)`` windows (and their noise maps)."""
        self._check(image)
        recipe = self if self.is_fitted else self.fit(image, rms)
        return np.concatenate([np.asarray(r.apply(_plane(image, b), _plane(rms, b) if r.needs_rms else None), np.float32)
                               for b, r in enumerate(recipe.recipes)])

    @property
    def fills(self) -> np.ndarray:
        """Each channel's value where its band has no data, band after band (float32, (Σ C,))."""
        return np.concatenate([r.fills for r in self.recipes]).astype(np.float32)

    def network_input(self, image, rms=None, missing: np.ndarray | None = None) -> np.ndarray:
        """:meth:`.Recipe.network_input` band by band: a band's channels are at their fills where
        *that* band has no data (``missing``: a ``(bands, h, w)`` mask, or one ``(h, w)`` mask for every
        band; else each band's own), so a pixel masked in one band is still seen in the others."""
        self._check(image)
        recipe = self if self.is_fitted else self.fit(image, rms)

        def band_missing(b):
            if missing is None:
                return None
            return missing[b] if np.ndim(missing) == 3 else missing

        return np.concatenate([r.network_input(np.asarray(_plane(image, b)),
                                               _plane(rms, b) if r.needs_rms else None, band_missing(b))
                               for b, r in enumerate(recipe.recipes)])

    def _check(self, image) -> None:
        n = len(image.planes) if hasattr(image, "planes") else (np.shape(image)[0] if np.ndim(image) == 3 else None)
        if n != len(self.bands):
            raise ValueError(f"this recipe takes {len(self.bands)} bands ({', '.join(self.bands)}) but got "
                             f"{'one image' if n is None else f'{n} band(s)'}")

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "name": self.name, "bands": list(self.bands),
                "recipes": [r.to_dict() for r in self.recipes]}

    @classmethod
    def from_dict(cls, data: dict) -> BandRecipe:
        if isinstance(data, BandRecipe):
            return data.copy()
        if not isinstance(data, dict) or data.get("format") != FORMAT or "bands" not in data or "recipes" not in data:
            raise ValueError("a band recipe is a mapping with 'bands' and one recipe per band ('recipes')")
        if int(data.get("version", VERSION)) > VERSION:
            raise ValueError(f"band recipe version {data['version']} is newer than this napari-galseg understands "
                             f"({VERSION}); upgrade napari-galseg")
        return cls(data["bands"], data["recipes"], data.get("name", ""))


def is_band_recipe(recipe) -> bool:
    return isinstance(recipe, BandRecipe) or (isinstance(recipe, dict) and recipe.get("format") == FORMAT)
