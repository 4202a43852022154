"""The batch retraining job: train a challenger on the latest data, backtest it against the
production model (the champion), publish it, and move ``production`` only when it is better.

One job, for one model name, under the model's job lock (a second job is refused at once; admin
actions are not: the registry's writers' lock is taken only to publish and promote):

1. Read ``production`` once: the live verdict (``--when degraded``) and the champion are of
   that version, if any. Load the data and the champion.
2. Cut the hold-out: the last ``horizon`` points of every series. The challenger trains on the
   points before it only (:func:`forecaster.train.fit` then keeps its own validation split
   inside those), so neither its weights nor its model selection ever see the hold-out.
3. Backtest: both models forecast the hold-out from the same histories (every point before it)
   and are scored on the same targets: sMAPE, MASE, and OWA against Naive2 on this data.
4. Sanity checks on the challenger (:func:`forecaster.predict.sanity_problems`): finite
   forecasts of fixed probe series and of the backtest, each within ``10 * max|history| + 1``.
5. Under the writers' lock, read production again and decide (:func:`decide`): if someone
   moved it during the run, a promotion is withdrawn ("superseded": the challenger was not
   compared with what serves now). Publish the challenger with ``report.json`` and
   ``plot.png`` inside the version (hashed with its weights), then move the alias. The alias
   moves last, so a crash at any point leaves ``production`` where it was; at worst an
   unpromoted version remains.

One module per concern: :mod:`.jobs` (config files and flags → jobs), :mod:`.backtest`,
:mod:`.decision`, :mod:`.state` (the job's stages, one frozen record each), :mod:`.run` (the
functions from one stage to the next), :mod:`.report` (report.json and plot.png, read from the
stages) and :mod:`.summary` (the lines and table printed at the end).
"""

from forecaster.configs import ConfigError
from forecaster.job import POLICIES, Policy
from forecaster.retrain.backtest import Backtest, Holdout, backtest, split_holdout
from forecaster.retrain.decision import Decision, Status, decide
from forecaster.retrain.jobs import Job, load_jobs, read_config_file
from forecaster.retrain.run import Outcome, RetrainError, failed, run_job
from forecaster.retrain.summary import describe, summary_table

__all__ = [
    "POLICIES",
    "Backtest",
    "ConfigError",
    "Decision",
    "Holdout",
    "Job",
    "Outcome",
    "Policy",
    "RetrainError",
    "Status",
    "backtest",
    "decide",
    "describe",
    "failed",
    "load_jobs",
    "read_config_file",
    "run_job",
    "split_holdout",
    "summary_table",
]
