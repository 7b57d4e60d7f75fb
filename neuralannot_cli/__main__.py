"""``python -m neuralannot_cli`` runs the CLI (the entry point torchrun uses for multi-GPU training)."""

from neuralannot_cli.cli.main import app

if __name__ == "__main__":
    app()
