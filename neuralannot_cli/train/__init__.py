"""Training (Algorithm 1 of NeuralAnnot) and the trained annotator.

- :mod:`.config`: :class:`TrainConfig` (CLI options / YAML).
- :mod:`.datasets`: loaders -> per-part cropped datasets (target joint sets, mirrored left hands, θ*).
- :mod:`.algorithm`: :func:`train` (stage 1 per aux set -> Θ* -> prior -> stage 2), resume, metrics.
- :mod:`.checkpoint`: output-directory layout, atomic writes, per-epoch training state.
- :mod:`.distributed`: torchrun / DDP set-up.
- :mod:`.geometry`: crop camera, projections, Procrustes (pure math).
- :mod:`.inference`: :func:`load_annotator` -> :class:`Annotator` ``.predict(batch) -> Prediction``.

Submodules are imported on use (``import neuralannot_cli.train`` stays cheap).
"""
