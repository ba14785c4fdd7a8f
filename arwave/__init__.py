"""arwave: fast autoregressive audio generation (CAM and SAT + AAR), trainable end to end."""

__version__ = "0.1.0"


def load(path, device="cpu", ema=True):
    """Load any trained run folder (codec, CAM, AAR, next-token, classifier), or a bundled pretrained
    model by name (`arwave.load("cam")`; `arwave models` lists them) when no folder of that name
    exists. Never unpickles."""
    from arwave.checkpoint import load as _load

    return _load(path, device=device, ema=ema)


__all__ = ["load", "__version__"]
