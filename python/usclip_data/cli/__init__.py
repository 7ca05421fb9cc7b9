"""Data-side subcommands of ``usclip`` (registered through the ``usclip.commands`` entry points)."""
