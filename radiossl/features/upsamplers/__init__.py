"""Built-in upsamplers (loaded through the ``radiossl.upsamplers`` entry points)."""
