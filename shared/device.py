"""Where to compute: a CUDA GPU, else an Apple GPU (MPS), else the CPU."""
import torch


def pick_device() -> torch.device:
    """The best device present: ``cuda``, then ``mps``, else ``cpu``."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)  # absent from some older builds
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
