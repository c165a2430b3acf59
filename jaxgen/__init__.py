"""jaxgen: JAX research codebase for adversarial image generation (super-resolution, style transfer)."""

__version__ = "0.1.0"
