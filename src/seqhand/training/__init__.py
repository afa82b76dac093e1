"""Training: the Lightning module and data module, fine-tuning, checkpoints."""
