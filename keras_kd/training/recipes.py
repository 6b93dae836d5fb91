"""Named recipes: the settings of a distillation method, picked with one argument.

`Distiller.compile(recipe="hinton")`, `keras-kd distill --recipe=hinton` and the YAML files in
`examples/configs/recipes/` all resolve here. Arguments given explicitly override the
recipe's. Where each recipe pays, and the measurements behind that, are in
`docs/when_distillation_pays.md`.
"""

import dataclasses

from keras_kd.registry import Registry

DEFAULT_RECIPE = "hinton"
DEFAULT_TEMPERATURE = 2.0
"""The one default temperature (the `hinton` recipe's), chosen on validation data (see the docs)."""


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The compile settings of one distillation method.

    Attributes:
        name: the name users pick it by.
        summary: one line on what it does and where it pays.
        distillation_loss: a loss name or spec for `keras_kd.losses.get`.
        alpha: weight of the label loss (`1 - alpha` weighs the distillation loss).
        temperature: T > 0.
        augmentation: `None`, or the name of an augmentation that teacher and student
            share (`"mixup"`: `keras.layers.MixUp`, images only).
        assistant: distil through an intermediate-size teacher assistant (the job builds it).
        reference: the paper.
    """

    name: str
    summary: str
    distillation_loss: object = "kd"
    alpha: float = 0.5
    temperature: float = DEFAULT_TEMPERATURE
    augmentation: str = None
    assistant: bool = False
    reference: str = ""

    def compile_arguments(self):
        """The `Distiller.compile` arguments this recipe sets."""
        return {
            "distillation_loss_fn": self.distillation_loss,
            "alpha": self.alpha,
            "temperature": self.temperature,
            "augmentation": build_augmentation(self.augmentation),
        }


RECIPES = Registry("recipe")
for _recipe in (
    Recipe(
        name="hinton",
        summary="KL of softened outputs plus labels; pays when the teacher knows more than the "
        "student's labels (a transfer set with an unlabelled pool).",
        reference="Hinton, Vinyals and Dean, 'Distilling the Knowledge in a Neural Network', 2015.",
    ),
    Recipe(
        name="function_matching",
        summary="No label loss; teacher and student see the same mixed-up view each step, T=1; "
        "patient: needs many epochs. Pays for images when the student can match the teacher.",
        alpha=0.0,
        temperature=1.0,
        augmentation="mixup",
        reference="Beyer et al., 'Knowledge distillation: A good teacher is patient and consistent', CVPR 2022.",
    ),
    Recipe(
        name="dist",
        summary="Pearson correlation of softened outputs (inter- and intra-class); robust to a large "
        "teacher-student gap.",
        distillation_loss="dist",
        alpha=0.5,
        temperature=1.0,
        reference="Huang et al., 'Knowledge Distillation from A Stronger Teacher', NeurIPS 2022.",
    ),
    Recipe(
        name="teacher_assistant",
        summary="Hinton KD through a mid-size assistant (teacher -> assistant -> student), for a large capacity gap.",
        assistant=True,
        reference="Mirzadeh et al., 'Improved Knowledge Distillation via Teacher Assistant', AAAI 2020.",
    ),
):
    RECIPES.add(_recipe.name, _recipe)


def get(identifier: "str | Recipe | None") -> Recipe:
    """A `Recipe` from its name (or a `Recipe`); an unknown name raises a ValueError listing the known ones."""
    if isinstance(identifier, Recipe):
        return identifier
    if identifier is None:
        identifier = DEFAULT_RECIPE
    return RECIPES.lookup(identifier)


def build_augmentation(name):
    """The shared augmentation layer of a recipe, or None."""
    if name is None:
        return None
    # Keras 3's preprocessing layers run on TensorFlow tensors under tf_keras too.
    import keras

    if name == "mixup":
        return keras.layers.MixUp(alpha=1.0)
    raise ValueError(f"Unknown augmentation {name!r}; known: mixup.")


def checked_augmentation(augmentation, default):
    """`Distiller.compile`'s augmentation: the layer given, the recipe's `default` when None, no
    augmentation for `False`; a TypeError for anything that is not callable."""
    augmentation = default if augmentation is None else augmentation
    if augmentation and not callable(augmentation):
        raise TypeError(f"`augmentation` must be a Keras layer or callable; received {augmentation!r}.")
    return augmentation or None
