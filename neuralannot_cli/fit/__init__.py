"""Optimisation-based fitting: the batched SMPLify-X-style engine (:mod:`.engine`), its priors
(:mod:`.priors`), FLAME face fitting (:mod:`.face`) and the baseline annotator (:mod:`.baseline`).

Submodules are imported on use (``from neuralannot_cli.fit.engine import fit``); importing this
package does no work.
"""
