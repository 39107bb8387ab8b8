"""Reinforcement learning stages: PPO (the project's own loop, its maths and actor-critic) and GRPO (TRL), with their rollouts."""
