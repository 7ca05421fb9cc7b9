"""Export: ONNX towers (``onnx_export``), fp16 variants (``fp16``), the bundle writer
(``bundle_writer``), INT8 Q/DQ image encoder (``int8``).

TensorRT engines and the Triton repository need no torch and live in the SDK
(``usclip_sdk.engine_build``, ``usclip_sdk.engine_cache``, ``usclip_sdk.triton_repo``), so a
deployment machine without the [train] extra can build them from a bundle.
"""
__all__: list[str] = []
