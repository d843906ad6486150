"""tofu3: verify unsigned downloads the 3TOFU way."""

__version__ = "0.1.0"
