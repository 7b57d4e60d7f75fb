"""Evaluation of pseudo-GT: metric functions, direct evaluation, overlays, indirect evaluation.

Submodules (import them directly; nothing heavy happens at import time):

- :mod:`.metrics`: MPJPE (root-aligned), similarity-Procrustes PA-MPJPE, MPVPE / PA-MPVPE, 2D error,
  FreiHAND PCK curve / AUC (pure tensor math).
- :mod:`.direct`: ``evaluate_direct`` / ``write_report`` (3D / 2D error and time of pseudo-GT files against
  dataset GT or a synthetic set's hidden GT; report.json and OpenCV plots).
- :mod:`.overlay`: ``render_overlays`` (meshes over images, side by side with a second source; PNG grid).
- :mod:`.indirect`: ``run_indirect`` (the ``regressor`` estimator trained on pseudo-GT, tested on GT 3D).
"""
