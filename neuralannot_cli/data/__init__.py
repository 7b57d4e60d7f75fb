"""Dataset loaders (one module per public format), synthetic generator and input pipeline."""
