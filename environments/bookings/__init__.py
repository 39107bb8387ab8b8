"""An airline booking desk in the tau-bench style: passengers, flights and reservations, with policy rules.

The world is drawn from the task's seed: four cities with flights between them over six days (each with
a time, a fare and the seats left), six passengers with a membership tier (basic, silver or gold), and
their reservations. The tools change that world, and enforce a small, fixed policy (stated in their
docstrings, refused with an informative error):

* at most 4 seats per booking, and never more seats than the flight has left;
* basic-tier passengers cannot cancel a reservation whose flight departs in less than 24 hours;
* a reservation can only be changed to another flight on the same route, with room for all its seats,
  for a change fee per seat of 50 (basic), 25 (silver) or 0 (gold).

The current time is fixed: 2026-05-01 12:00. Tasks that change the world are verified on the final
state as tau-bench does: it is compared with the state the expert's calls leave on a fresh copy of the
world, with partial credit per changed field and a penalty for every reservation or flight touched that
the task did not ask for. Policy tasks whose right outcome is a refusal get full credit for an unchanged
world and an answer that refuses, names the reservation and gives the reason.

``world``: the world, the policy and the state; ``env``: the tools and the verifier; ``families``: the
task families; ``phrasings``: how customers ask for them.
"""

from environments.bookings.env import BookingsEnv

__all__ = ["BookingsEnv"]
