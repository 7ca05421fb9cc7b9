"""usclip_data: the data side of usclip, torch-free.

``usclip_data.synth`` is the physically-motivated synthetic B-mode engine; ``us365k``,
``us365k_writer`` and ``public`` read and write the real layouts (US-365K, BUSI,
FETAL_PLANES_DB, folders of classes, caption tables); ``sample`` is the record every reader
yields. Training (``usclip_train``) and the benchmarks consume it; the device runtime
(``usclip_sdk``) never imports it. The taxonomy it labels with is ``usclip_sdk.taxonomy``,
the one source of truth.
"""
