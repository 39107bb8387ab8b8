"""hermes-train: LoRA SFT, PPO on the Atropos reward in simulated tool environments, and evaluation."""

__version__ = "0.1.0"
