"""Release files: ``tofu3 verify https://...``, the original 3TOFU use, with the same
three-vantage agreement as for an image (see tofu3.release.url and tofu3.release.walk)."""
