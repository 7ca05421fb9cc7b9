"""usclip_train: everything that needs torch - models, losses, training, evaluation, export.

It may import usclip_sdk (the taxonomy, the data engine, the bundle format); usclip_sdk never
imports it.
"""
__all__: list[str] = []
