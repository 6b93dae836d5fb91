"""The one search behind every comparison of the jobs: each student tries as many settings as the other.

A distilled student that picks its learning rate, alpha and T on validation, compared with a student
from labels that trains at one fixed rate, wins partly by its search. So both arms search alike:

- both try every learning rate of `learning_rate_grid` (default: the one `learning_rate`);
- the distilled student also tries every alpha x T of `alpha_grid` x `temperature_grid`; the student
  from labels tries as many weight decays (`CONTROL_WEIGHT_DECAYS`, from 0 up), so both grids have
  the same size;
- every trial starts from the same initial weights, keeps its best epoch on validation
  (`KeepBestEpoch`), and is scored by its validation accuracy there;
- the trial best on validation is the arm's model (the first one tried on a tie). The test set plays
  no part in any choice: the job reads it once, after every choice is made.
"""

import dataclasses
import itertools

CONTROL_WEIGHT_DECAYS = (0.0, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1)
"""The control's second axis, balancing the distilled student's alpha x T: AdamW's weight decay."""


def _floats(values, default):
    return [float(value) for value in values] if values else [default]


def grids(config):
    """`{"student_scratch": [settings, ...], "student_kd": [settings, ...]}`: the same number of
    settings per arm, each a dict of the config fields the trial overrides."""
    arguments = config.compile_arguments()
    rates = _floats(config.learning_rate_grid, config.learning_rate)
    alphas = _floats(config.alpha_grid, arguments["alpha"])
    temperatures = _floats(config.temperature_grid, arguments["temperature"])
    responses = len(alphas) * len(temperatures)
    if responses > len(CONTROL_WEIGHT_DECAYS):
        raise ValueError(
            f"`alpha_grid` x `temperature_grid` holds {responses} settings; the student from labels can be "
            f"given at most {len(CONTROL_WEIGHT_DECAYS)} weight decays to match them (CONTROL_WEIGHT_DECAYS)."
        )
    decays = CONTROL_WEIGHT_DECAYS[:responses] if responses > 1 else (float(config.weight_decay),)
    return {
        "student_scratch": [
            {"learning_rate": rate, "weight_decay": decay} for rate, decay in itertools.product(rates, decays)
        ],
        "student_kd": [
            {"learning_rate": rate, "alpha": alpha, "temperature": temperature, "weight_decay": config.weight_decay}
            for rate, alpha, temperature in itertools.product(rates, alphas, temperatures)
        ],
    }


def is_search(config):
    """True when the config gives either arm more than one setting."""
    return len(grids(config)["student_kd"]) > 1


def trial_role(arm, index, count):
    """The role of trial `index` (0-based) of `count`: the arm itself when it is the only one, so a run
    without a search keeps its backups and logs under the arm's name."""
    return arm if count == 1 else f"{arm}_trial{index + 1}"


def search(arm, config, train_trial, log=print):
    """Train every setting of `arm`'s grid and keep the one best on validation.

    Args:
        train_trial: `train_trial(trial_config, role)` -> `(model, keeper)`: trains a fresh student,
            from the run's initial weights, under `trial_config` (the run's config with the trial's
            settings), named `role`; `keeper` is its `KeepBestEpoch`.

    Returns:
        `(model, keeper, selection)`: the chosen trial's model and keeper, and the record
        `{"trials": [{"settings", "validation", "best_epoch"}, ...], "chosen": settings, "best_epoch"}`.
    """
    from keras_kd.data.checks import NonFiniteLossError

    settings_list = grids(config)[arm]
    varied = [key for key in settings_list[0] if len({setting[key] for setting in settings_list}) > 1]
    best, trials = None, []
    for index, settings in enumerate(settings_list):
        role = trial_role(arm, index, len(settings_list))
        try:
            model, keeper = train_trial(dataclasses.replace(config, **settings), role)
        except NonFiniteLossError as error:
            if len(settings_list) == 1:
                raise
            trials.append({"settings": settings, "validation": None, "best_epoch": None, "failed": str(error)})
            log(f"      {role} {_words(settings, varied)}: diverged (non-finite loss), left out of the choice")
            continue
        score = keeper.best
        trials.append({"settings": settings, "validation": score, "best_epoch": keeper.best_epoch})
        if len(settings_list) > 1:
            log(f"      {role} {_words(settings, varied)}: validation accuracy {_percent(score)}")
        if best is None or (score is not None and (best[2] is None or score > best[2])):
            best = (model, keeper, score, settings)
    if best is None:
        raise NonFiniteLossError(f"Every setting of {arm}'s search diverged: {trials[-1]['failed']}")
    model, keeper, _, settings = best
    if len(settings_list) > 1:
        log(f"      {arm}: kept {_words(settings, varied)}, the best of {len(settings_list)} on validation")
    return model, keeper, {"trials": trials, "chosen": settings, "best_epoch": keeper.best_epoch}


def _words(settings, names):
    return ", ".join(f"{name.replace('_', ' ')} {settings[name]:g}" for name in names)


def _percent(score):
    return "none (no validation data)" if score is None else f"{100 * score:.2f} %"
