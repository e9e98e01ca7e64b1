"""Export of a fitted model's tensor part to ONNX: one graph from pre-processed pixels (1, 3, S, S) in [0, 1]
to the smoothed anomaly map (1, S, S) and the image score (1,) — backbone, patch aggregation, the expert's
scoring (nearest neighbours as a matrix product and top-k inside the graph), smoothing. What turns those
into answers (the calibration, the configuration) travels in the model's metadata under "anomalens".

Experts that cannot be exported yet (route B scores a batch against itself; an inverted-file PatchCore bank)
and models taught to find marked defects again (a defect memory) are refused with their reason."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from .inspector import Inspector
from .version import __version__

OPSET = 17


def export_onnx(inspector: Inspector, path: str | Path, overwrite: bool = False) -> Path:
    import onnx

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another name or allow overwriting")
    if inspector.expert is None or inspector.calibration is None:
        raise ValueError("only a fitted model can be exported")
    if inspector.defect_memory is not None:  # its graph would pass the defects this model was taught to flag
        taught = ", ".join(dict.fromkeys(inspector.defect_memory.names))
        raise NotImplementedError(
            f"this model was taught to find defects like the ones marked on {taught} (its defect memory), which an "
            "exported graph cannot carry yet: export the version before that teaching (anomalens info lists them)"
        )
    graph = inspector.graph()  # NotImplementedError from experts that cannot be exported yet
    size = inspector.expert.input_size or inspector.config.image_size
    tmp = path.with_name(path.name + ".partial")
    try:
        with warnings.catch_warnings():  # the TorchScript-based exporter's deprecation and shape notes
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                (torch.zeros(1, 3, size, size),),
                tmp,
                opset_version=OPSET,
                dynamo=False,
                input_names=["pixels"],
                output_names=["anomaly_map", "score"],
            )
        model = onnx.load(str(tmp))
        header = {
            "anomalens_version": __version__,
            "config": asdict(inspector.config),
            "expert": inspector.expert.name,
            "calibration": inspector.calibration.to_dict(),
            "input_size": size,
            "resize_mode": inspector.expert.resize_mode,
            "scale": inspector.layout(inspector.expert).scale,  # how images become inputs: whole, or tiles
        }
        model.metadata_props.add(key="anomalens", value=json.dumps(header))
        onnx.save(model, str(path))
    finally:
        tmp.unlink(missing_ok=True)
    return path
