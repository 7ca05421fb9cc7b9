"""One native-op convention for preprocess, similarity and the gate: device strings, errors, one map.

Every CUDA failure - in an op, in a DeviceArray allocation, in the rt_* calls the TensorRT
backend makes - arrives as usclip_sdk.errors.DeviceError through the one translator the native
module registers at load (csrc/common/errors.h); none is a bare RuntimeError.
"""
import numpy as np
import pytest

from usclip_sdk import ops
from usclip_sdk.errors import DeviceError, UsclipError
from usclip_sdk.ops._native import native
from usclip_sdk.ops.device import DeviceArray, parse_device

CUDA_HERE = ops.build_info()["cuda_kernels"] and ops.cuda_available()
no_gpu = pytest.mark.skipif(CUDA_HERE, reason="needs a machine where CUDA cannot run")

FRAME = np.zeros((8, 8, 3), np.uint8)
EMB = np.ones((1, 4), np.float32)


def _pre(device):
    return ops.preprocess(FRAME, size=4, device=device)


def _sim(device):
    return ops.similarity(EMB, np.ones((2, 4), np.float32), device=device)


def _gate(device):
    return ops.gate_figures(FRAME, np.ones((8, 8), np.uint8), (0, 0, 8, 8), device=device)


@pytest.mark.parametrize("op", [_pre, _sim, _gate])
@pytest.mark.parametrize("device", ["gpu", "cuda:x", "CUDA", 0, None])
def test_every_op_refuses_the_same_bad_device_strings(op, device):
    with pytest.raises(ValueError, match="device"):
        op(device)


@no_gpu
@pytest.mark.parametrize("op", [_pre, _sim, _gate])
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_every_op_accepts_the_same_device_strings_and_raises_device_error_here(op, device):
    with pytest.raises(DeviceError):
        op(device)


def test_parse_device():
    assert (parse_device("cpu"), parse_device("cuda"), parse_device("cuda:3")) == (None, -1, 3)


@no_gpu
@pytest.mark.parametrize("call", [
    lambda n: n.rt_stream_create(),
    lambda n: n.rt_host_alloc_pinned(64),
    lambda n: n.device_malloc(64) if hasattr(n, "device_malloc") else pytest.skip("CPU-only build: no device_malloc"),
    lambda n: n.rt_set_device(0),
])
def test_native_cuda_failures_are_device_errors_not_runtime_errors(call):
    with pytest.raises(DeviceError) as e:
        call(native())
    assert isinstance(e.value, UsclipError) and str(e.value)  # the CUDA call is named


@no_gpu
def test_device_array_allocation_failure_is_a_device_error():
    with pytest.raises(DeviceError):
        DeviceArray((4, 4), np.float32)


@pytest.mark.skipif(not ops.build_info()["cuda_kernels"], reason="CPU-only build")
def test_invalid_arguments_in_native_code_are_value_errors():
    with pytest.raises(ValueError, match="kind"):
        native().rt_memcpy_async(0, 0, 0, 9, 0)  # checked before any CUDA call
