"""Data: the synthetic B-mode engine (``synth``) and readers/writers for real layouts."""
