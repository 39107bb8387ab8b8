"""Reinforcement learning stages: PPO (the project's own loop, its maths, checkpoints and actor-critic) and GRPO (TRL's trainer)."""
