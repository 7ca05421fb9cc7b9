"""Training-side subcommands of ``usclip`` (one module per command; see usclip_sdk.cli)."""
