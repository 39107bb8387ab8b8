"""Simulated tool environments: where PPO gets its episodes and reward, and SFT its expert trajectories.

Filled in by the environments work (issue 3); the package exists now so the distribution's layout is final.
"""
