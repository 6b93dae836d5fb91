"""The teacher's side: its outputs kept once (whole, top-k, on disk, per augmented view) and its
cheaper forward pass. The Distiller attaches them; nothing here trains."""
