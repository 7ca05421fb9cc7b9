"""The whole pipeline as a Triton Python-backend model (``usclip_classify`` in export-triton).

Frame in (``frame``: uint8 N x H x W x C, C = 1 gray or 3 RGB); the SDK's own region detection,
preprocess, encoder and similarity inside (one ``Classifier`` per model instance); the nine
taxonomy attributes out: for each field F an output ``F`` (BYTES [1], the top value) and
``scores`` (FP32 [9]: each field's top probability, fields in taxonomy order). So a server
scales the full pipeline out (instance groups, dynamic batching) and answers what
``Classifier.classify`` answers on the same frame.

The generated ``model.py`` only imports ``TritonPythonModel`` from here, so the server's
Python needs this SDK installed (docs/deployment.md). ``triton_python_backend_utils`` exists
only inside a Triton Python-backend process; it is imported in ``initialize``.
Model config parameters: ``backend`` (auto | onnxruntime | tensorrt; default auto), ``region``
(auto | full), ``bundle`` (file or folder name inside the version folder).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["TritonPythonModel", "MODEL_PY", "output_names", "outputs_for"]

log = logging.getLogger(__name__)

MODEL_PY = ('"""usclip_classify: the SDK pipeline (usclip_sdk.triton_backend); needs usclip-sdk in '
            'the server\'s Python."""\nfrom usclip_sdk.triton_backend import TritonPythonModel  # noqa: F401\n')


def output_names(fields: Sequence[str]) -> list[str]:
    return [*fields, "scores"]


def outputs_for(classifier: Any, frames: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Batched outputs (first dimension = len(frames)) for frames of any sizes from one
    ``classify_batch`` call: what the responses carry, testable without Triton."""
    preds = classifier.classify_batch([_squeeze(f) for f in frames])
    out: dict[str, np.ndarray] = {
        f: np.array([[p.attributes[f].value.encode()] for p in preds], dtype=object) for f in classifier.fields}
    out["scores"] = np.array([[p.attributes[f].score for f in classifier.fields] for p in preds], dtype=np.float32)
    return out


def _squeeze(frame: np.ndarray) -> np.ndarray:
    # Triton tensors have a fixed rank: gray frames arrive as H x W x 1.
    return frame[..., 0] if frame.ndim == 3 and frame.shape[2] == 1 else frame


def _params(model_config: dict) -> dict[str, str]:
    return {k: v.get("string_value", "") for k, v in (model_config.get("parameters") or {}).items()}


class TritonPythonModel:
    """Triton's Python-backend interface: initialize / execute / finalize."""

    def initialize(self, args: dict) -> None:
        import triton_python_backend_utils as pb_utils  # only inside a Triton server

        from .classifier import Classifier

        self._pb = pb_utils
        config = json.loads(args["model_config"])
        params = _params(config)
        version_dir = Path(args["model_repository"]) / str(args["model_version"])
        bundle = version_dir / params.get("bundle", "bundle")
        gpu = args.get("model_instance_kind") == "GPU"
        self.classifier = Classifier(bundle, backend=params.get("backend", "auto"),
                                     device="cuda" if gpu else "cpu", region=params.get("region", "auto"))
        self.names = output_names(self.classifier.fields)
        declared = [o["name"] for o in config["output"]]
        if declared != self.names:
            raise pb_utils.TritonModelException(
                f"usclip_classify: config.pbtxt outputs {declared} do not match the bundle's {self.names}; "
                "re-run usclip export-triton")
        log.info("usclip_classify instance %s: bundle %s, backend %s", args.get("model_instance_name"),
                 bundle.name, self.classifier.backend.name)

    def execute(self, requests: list) -> list:
        pb = self._pb
        batches = [pb.get_input_tensor_by_name(req, "frame").as_numpy() for req in requests]
        try:
            # One classify_batch over every request Triton batched together (sizes may differ).
            outs = outputs_for(self.classifier, [f for b in batches for f in b])
        except Exception as e:
            if len(requests) == 1:
                return [self._error(type(e).__name__, str(e))]
            # one bad request must not fail the others the batcher merged with it
            return [self._respond(b) for b in batches]
        responses, start = [], 0
        for b in batches:
            responses.append(self._response({k: v[start:start + len(b)] for k, v in outs.items()}))
            start += len(b)
        return responses

    def _respond(self, batch: np.ndarray):
        try:
            return self._response(outputs_for(self.classifier, list(batch)))
        except Exception as e:
            return self._error(type(e).__name__, str(e))

    def _response(self, outs: dict[str, np.ndarray]):
        # a fresh array per response: the stub serialises from the array's own buffer
        return self._pb.InferenceResponse(
            output_tensors=[self._pb.Tensor(n, np.array(outs[n])) for n in self.names])

    def _error(self, kind: str, message: str):
        # the SDK's typed error and message reach the client (not a server traceback)
        return self._pb.InferenceResponse(error=self._pb.TritonError(f"{kind}: {message}"))

    def finalize(self) -> None:
        self.classifier = None
