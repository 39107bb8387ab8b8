"""An episode from raw assistant text: parse each turn, run its calls in the environment, return the tool turns.

The project's rollout loop, the oracle driver and ``envs play`` all play environments through ``Episode``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from environments.record import CallRecord, EpisodeRecord, TurnRecord

if TYPE_CHECKING:
    from environments.base import ToolEnvironment
    from environments.record import Task


class Episode:
    """Plays assistant turns (raw text) against an environment until a final answer or a limit.

    ``step(text)`` parses the text with the project's parser, runs each valid call (invalid ones are
    recorded and answered with an error), and returns the ``tool`` messages to append; it returns ``[]``
    once the episode is over. Garbage in is a scored, penalised episode, never an exception; a tool that
    crashes (a bug in the environment) ends the episode at that call, scored and truncated with the reason.
    """

    def __init__(self, env: ToolEnvironment, task: Task):
        self.env = env
        self.prompt = env.reset(task)
        self.tools = env.tool_schemas()
        self._tool_names = set(env.tool_names())
        self.done = False

    @property
    def record(self) -> EpisodeRecord:
        return self.env.record

    def step(self, text: str) -> list[dict[str, Any]]:
        from hermes_train.formatting import parse_assistant_output

        if self.done:
            return []
        parsed = parse_assistant_output(text)
        turn = TurnRecord(index=len(self.record.turns), text=text if isinstance(text, str) else str(text), think=parsed.think, content=parsed.content)
        self.record.turns.append(turn)
        if not parsed.calls:
            self.record.final_answer = parsed.content
            self.record.finished = True
            self.end()
            return []
        messages = []
        for i, call in enumerate(parsed.calls):
            if i >= self.env.max_calls_per_turn:
                observation = self._invalid(turn, call.name, call.arguments, f"too many calls in one turn (the limit is {self.env.max_calls_per_turn})")
            elif not call.valid:
                observation = self._invalid(turn, call.name, call.arguments, f"could not parse the tool call: {call.error}")
            elif call.name not in self._tool_names:
                observation = self._invalid(turn, call.name, call.arguments, f"unknown tool {call.name!r}; available tools: {', '.join(sorted(self._tool_names))}")
            else:
                observation = getattr(self.env, call.name)(**call.arguments)
            name = self.env._observe(call.name) if call.name else "invalid_call"  # a hostile name is echoed like an observation
            messages.append({"role": "tool", "name": name, "content": observation})
            made = turn.calls[-1]
            if made.status == "crash":  # a bug in the environment: nothing after it can be trusted, so it ends here
                self.end(f"the tool {made.name} crashed: {made.error.splitlines()[0]}")
                return messages
        if len(self.record.turns) >= self.env.max_turns:
            self.end(f"reached the limit of {self.env.max_turns} turns")
        return messages

    def _invalid(self, turn: TurnRecord, name: str | None, arguments: dict | None, error: str) -> Any:
        observation = self.env._observe({"error": error})
        turn.calls.append(CallRecord(turn=turn.index, name=name, arguments=arguments, status="invalid", observation=observation, error=error))
        return observation

    def end(self, reason: str | None = None) -> None:
        """End the episode now (the answer came, a limit was hit, the script ran out) and score it."""
        if self.done:
            return
        if reason and not self.record.finished:
            self.record.truncated = reason
        self.done = True
        self.env._finish()

    def play(self, turns: Sequence[str]) -> EpisodeRecord:
        """Play a script of assistant turns; an episode the script leaves unfinished ends without an answer."""
        for text in turns:
            if self.done:
                break
            self.step(text)
        self.end("the script ended without a final answer")
        return self.record
