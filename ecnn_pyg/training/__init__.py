"""Training of the ECNN (and of the IFNN baseline) on ED data sets.

``train(config)`` is what ``ecnn-pyg train --config FILE.yaml`` runs; the keys
are :data:`TRAIN_SCHEMA` (every one commented in ``configs/square_train.yaml``).
One concept per module:

* :mod:`.schema`: the training config (:data:`TRAIN_SCHEMA`, :func:`load_train_config`);
* :mod:`.data`: the samples of one or several supercells (:class:`TrainingPart`,
  :func:`load_training_parts`) and their batches (:class:`GraphBatcher`);
* :mod:`.loss`: ``MSE(B) + energy_weight * MSE(E / N)`` (MSE over all field
  components), optionally weighted per sample (``weight_by_energy``: the
  low-energy states count more, :meth:`Trainer._set_sample_weights`);
* :mod:`.evaluate`: predictions and metrics (:func:`evaluate_arrays`,
  :func:`evaluate_parts`);
* :mod:`.log`: ``log.csv`` and the learning curve;
* :mod:`.trainer`: :class:`Trainer` and :func:`train`;
* :mod:`.export`: a run's checkpoint as a shippable model and its model card
  (``ecnn-pyg export``).

The training itself:

* Optimizers AdaGrad (the paper) or Adam; ``ReduceLROnPlateau`` on the
  validation loss (factor 0.5, patience 20: "halved after 20 epochs without
  improvement"); early stopping on the validation loss.
* Mini-batches of ``batch_size`` configurations (PyG ``Batch`` of the shared
  lattice graph); augmentation by random symmetry operations of the data's
  lattice, derived from its definition (:mod:`ecnn_pyg.augment`; a lattice
  without any trains without, and the run says so).
* The model's lattice comes from the data file (which stores its definition)
  unless ``model_config.lattice`` names it, and then must match; a lattice of
  one's own is kept in the checkpoint as its definition, so nothing (bond
  types, shells, the file) has to be given again to rebuild the model.
* With ``energy_weight: 0`` (fields only) the energy's constant is free: it is
  calibrated on the training split after every epoch (mean (E_ED - E_model)/N
  = 0) and the run says that energies were not trained.
* Every key is range-checked before any work (:data:`~.schema.RANGES`); a run
  whose loss or weights become non-finite stops with
  :class:`~.trainer.TrainingDivergedError`, keeping the last good checkpoints;
  the run directory is locked (:func:`ecnn_pyg.locking.output_lock`).
  ``data`` may list files of several supercells of one lattice and model
  (e.g. 12 x 12 cells and 24 x 24 snapshots): each supercell is a
  :class:`TrainingPart`, a batch holds one part, and the batches of all parts
  are interleaved.
* Reproducible: the model is initialised from ``seed``; the shuffling and the
  rotations of epoch ``e`` come from a generator seeded with ``(seed, e)``, so
  a resumed run follows the same path as an uninterrupted one.
* Run directory: ``config.yaml``, ``log.csv`` (one row per epoch),
  ``learning_curve.png``, ``best.pt`` (lowest validation loss) and ``last.pt``
  (end of the latest epoch), both written atomically; ``--resume`` continues
  from ``last.pt`` and loses at most the epoch in flight.

Train metrics in the log are accumulated over the epoch's batches as they are
trained (running, like Keras), validation metrics are computed after the epoch.
"""
from .data import GraphBatcher, TrainingPart, load_training_data, load_training_parts
from .evaluate import evaluate_arrays, evaluate_parts
from .export import export_model
from .log import LOG_COLUMNS, plot_learning_curve, read_log, write_log_row
from .loss import field_energy_loss
from .schema import DTYPES, RESUME_MUTABLE, TRAIN_SCHEMA, load_train_config
from .trainer import Trainer, TrainingDivergedError, train

__all__ = ["TRAIN_SCHEMA", "RESUME_MUTABLE", "DTYPES", "load_train_config", "Trainer", "train",
           "TrainingDivergedError",
           "evaluate_arrays", "evaluate_parts", "field_energy_loss", "GraphBatcher",
           "TrainingPart", "load_training_parts", "load_training_data", "LOG_COLUMNS",
           "read_log", "write_log_row", "plot_learning_curve", "export_model"]
