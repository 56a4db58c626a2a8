"""Committee active learning: explore with the learned field, label where the committee disagrees.

``learn(config)`` is what ``ecnn-pyg learn --config FILE.yaml`` runs (keys: every one
commented in ``configs/triangular_learn.yaml``; the loop is described in
``docs/active_learning.md``). One concept per module:

* :mod:`.schema`: the config, its defaults and every check made before any work
  (:func:`load_learn_config`);
* :mod:`.select`: the trust levels' classes (accurate / candidate / failed) and the
  selection of at most K candidates spread over fields and starts (:func:`select_candidates`);
* :mod:`.loop`: the resumable stages of every round (:func:`learn`, :func:`status`);
* :mod:`.report`: the round reports, the sigma-versus-error calibration and the summary.
"""
from .loop import ROUND0_STAGES, STAGES, learn, status
from .schema import LEARN_SCHEMA, load_learn_config
from .select import classify, select_candidates

__all__ = ["learn", "status", "load_learn_config", "LEARN_SCHEMA", "STAGES", "ROUND0_STAGES",
           "classify", "select_candidates"]
