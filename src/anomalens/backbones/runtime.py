"""A backbone's network run by onnxruntime instead of eager torch: the same feature maps (within 3e-5, float32
reordering) about twice as fast on a CPU, where eager torch spends its time in the depthwise convolutions
and between operators (bench/speed.md).

The network is exported once per input shape (batch size free) into a cache folder (`ANOMALENS_CACHE`, else
~/.cache/anomalens), named by a fingerprint of the weights, the stages and the versions that shape the
graph, so later runs start at once. A shape gets its graph when it comes a second time (images of one
camera share a shape; aspect-kept images of many sizes need not cost an export each), and at most
MAX_GRAPHS shapes do; the others run in eager torch. Where onnxruntime or the exporter is missing, or
`ANOMALENS_BACKBONE_RUNTIME=torch`, the network runs in eager torch as before."""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from pathlib import Path

import torch
from torch import nn

from ..version import __version__

OPSET = 17
RUNTIME_ENV = "ANOMALENS_BACKBONE_RUNTIME"  # "torch": never use onnxruntime
MAX_GRAPHS = 16  # input shapes given a graph (and a session) per network


def cache_folder() -> Path:
    return Path(os.environ.get("ANOMALENS_CACHE") or Path.home() / ".cache" / "anomalens") / "backbones"


class OnnxRuntimeNetwork:
    """Callable like the network it wraps: scaled pixels (B, 3, H, W) → its feature maps, as torch tensors."""

    def __init__(self, network: nn.Module, fingerprint: str):
        import onnxruntime

        self.network, self.fingerprint, self.onnxruntime = network, fingerprint, onnxruntime
        self.sessions: dict[tuple[int, ...], object] = {}
        self.seen: set[tuple[int, ...]] = set()  # shapes run once, in torch
        self.lock = threading.Lock()  # one export per shape when threads share an inspector

    @classmethod
    def of(cls, network: nn.Module, weights_sha256: str, stages: tuple[int, ...]) -> OnnxRuntimeNetwork | None:
        """The runtime for `network`, or None where it cannot be used (the network then runs in torch)."""
        if os.environ.get(RUNTIME_ENV, "").lower() == "torch":
            return None
        try:
            import onnx  # noqa: F401 - torch's exporter needs it
        except ImportError:
            return None
        key = f"{weights_sha256}|{stages}|{__version__}|{torch.__version__}|{OPSET}"
        try:
            return cls(network, hashlib.sha256(key.encode()).hexdigest()[:20])
        except ImportError:
            return None

    def __call__(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        session = self._session(tuple(pixels.shape[1:]))
        if session is None:
            return self.network(pixels)
        outputs = session.run(None, {"pixels": pixels.detach().contiguous().numpy()})
        return [torch.from_numpy(output) for output in outputs]

    def _session(self, shape: tuple[int, ...]):
        """The shape's session; None while the shape is new, or when MAX_GRAPHS shapes have one already."""
        with self.lock:
            if shape not in self.sessions:
                new = shape not in self.seen and not self._path(shape).is_file()  # a cached graph costs no export
                if new or len(self.sessions) >= MAX_GRAPHS:
                    self.seen = self.seen if len(self.seen) < 4 * MAX_GRAPHS**2 else set()  # bounded
                    self.seen.add(shape)
                    return None
                options = self.onnxruntime.SessionOptions()
                # no busy-waiting between runs: the threads would take the cores from the search after it
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self.sessions[shape] = self.onnxruntime.InferenceSession(
                    str(self._graph(shape)), options, providers=["CPUExecutionProvider"]
                )
            return self.sessions[shape]

    def _path(self, shape: tuple[int, ...]) -> Path:
        return cache_folder() / f"{self.fingerprint}-{'x'.join(map(str, shape))}.onnx"

    def _graph(self, shape: tuple[int, ...]) -> Path:
        path = self._path(shape)
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        try:
            with warnings.catch_warnings():  # the TorchScript-based exporter's deprecation and shape notes
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    self.network,
                    (torch.zeros(1, *shape),),
                    partial,
                    opset_version=OPSET,
                    dynamo=False,
                    input_names=["pixels"],
                    dynamic_axes={"pixels": {0: "batch"}},
                )
            partial.replace(path)  # atomic: another process sees the whole graph or none
        finally:
            partial.unlink(missing_ok=True)
        return path
