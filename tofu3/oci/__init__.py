"""OCI distribution and image formats: media types, manifests, challenges, platforms (pure)."""
