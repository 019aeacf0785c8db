"""The part of a recipe that inference needs, and the recipe object rebuilt from it.

A model file (:mod:`speechattn.models.modelfile`) keeps a recipe's *inference sections*:
``features`` (the frontend), ``normalize``, ``model`` (the architecture) and the task's
post-processing / decoding / evaluation settings (``postprocess``, ``decode``, ``eval``). The
*training sections*, :data:`TRAINING_SECTIONS` (where the data is, the optimiser and schedule,
augmentation, the loss), never go into a model file. Loading one validates its sections into the
task's recipe type; the training sections then hold their defaults, which inference never reads.
"""

from __future__ import annotations

from typing import Any, Mapping

from speechattn.recipes.schema import ConfigError, from_dict, to_dict

__all__ = ["TRAINING_SECTIONS", "inference_sections", "recipe_from_sections"]

#: Recipe sections that only training reads.
TRAINING_SECTIONS = ("task", "data", "train", "augment", "loss")


def inference_sections(recipe: Any) -> dict[str, Any]:
    """The recipe's inference sections as plain data (everything but :data:`TRAINING_SECTIONS`)."""
    return {k: v for k, v in to_dict(recipe).items() if k not in TRAINING_SECTIONS}


def recipe_from_sections(recipe_type: type, sections: Mapping[str, Any], source: str) -> Any:
    """The recipe of ``recipe_type`` built from inference ``sections`` (training sections at
    their defaults); a :class:`ConfigError` naming ``source`` if they do not fit the schema."""
    extra = sorted(set(sections) & set(TRAINING_SECTIONS))
    if extra:
        raise ConfigError(f"a model file holds no training sections, found {extra}", source=source)
    return from_dict(recipe_type, dict(sections), source=source)

