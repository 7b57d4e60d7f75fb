"""neuralannot: neural annotator of pseudo-ground-truth SMPL-X parameters (Moon & Lee, NeuralAnnot).

The package is split by concept (see ``shared/STYLE.md``):

- :mod:`neuralannot_cli.rotation` and :mod:`neuralannot_cli.camera`: pure tensor math.
- :mod:`neuralannot_cli.body`: body-model adapters over ``smplx``, joint sets, the stand-in generator.
- :mod:`neuralannot_cli.data`: one module per dataset format, the synthetic generator, crop/batch pipeline.
- :mod:`neuralannot_cli.render`: CPU rasteriser.
- :mod:`neuralannot_cli.cli`: the Typer command line, one module per subcommand.

Nothing heavy is imported or loaded at import time.
"""

__version__ = "0.1.0"
