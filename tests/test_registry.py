"""`Registry`: one lookup and one error text for losses, recipes, schedules, data sets and presets."""

import pytest

from keras_kd import datasets, losses
from keras_kd.models.presets import PRESETS
from keras_kd.registry import Registry
from keras_kd.training import recipes, schedules


def test_registry_registers_by_decorator_and_refuses_unknown_and_taken_names():
    things = Registry("thing")

    @things.register("a", "alias")
    class A:
        pass

    assert things["a"] is A and things.lookup("alias") is A and list(things) == ["a", "alias"]
    assert "b" not in things and things.get("b") is None  # a Mapping: get() and `in` work
    with pytest.raises(ValueError, match=r"^Unknown thing 'b'; known things: a, alias\.$"):
        things.lookup("b")
    with pytest.raises(ValueError, match="taken"):
        things.add("a", object())


@pytest.mark.parametrize(
    "registry, kind",
    [
        (losses.LOSSES, "distillation loss"),
        (recipes.RECIPES, "recipe"),
        (schedules.SCHEDULES, "schedule"),
        (datasets.LOADERS, "dataset"),
        (PRESETS, "model preset"),
    ],
)
def test_every_table_is_a_registry_with_the_same_message(registry, kind):
    assert isinstance(registry, Registry) and len(registry) > 0
    with pytest.raises(ValueError, match=f"^Unknown {kind} 'nope'; known .*: {registry.names()[0]}"):
        registry.lookup("nope")


def test_the_public_lookups_go_through_the_registries():
    assert isinstance(losses.get("dkd"), losses.DKDLoss)
    assert recipes.get("dist").name == "dist"
    assert isinstance(schedules.get({"name": "WarmUp", "start": 1.0, "end": 0.5, "epochs": 2}), schedules.WarmUp)
    assert isinstance(schedules.get({"name": "warmup", "start": 1.0, "end": 0.5, "epochs": 2}), schedules.WarmUp)
    for lookup in (
        lambda: losses.get({"name": "nope"}),
        lambda: recipes.get("nope"),
        lambda: schedules.get({"name": "nope"}),
        lambda: datasets.load("nope"),
    ):
        with pytest.raises(ValueError, match="^Unknown "):
            lookup()
