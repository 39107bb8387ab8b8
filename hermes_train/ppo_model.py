"""The models PPO trains, on one copy of the base weights: actor, reference and critic.

* **actor**: the LoRA adapter ``"default"`` (PEFT's default name, so the saved adapter is an ordinary adapter
  folder) on the base model;
* **reference**: the same base with every adapter disabled: no second copy of the weights;
* **critic**: a scalar value head on the last hidden state of the same base under its own LoRA adapter
  ``"critic"`` (``ppo.critic: shared_base``), or of a separate copy of the base with its own adapter
  (``ppo.critic: separate``).

When the run has an SFT adapter (``output_dir/sft/adapter``, else ``lora.adapter_path``) it is merged into the
base weights before the PPO adapters are added: the reference is then the SFT policy (the KL penalty keeps PPO
near what SFT taught, not near the untrained base), and the fresh actor adapter starts equal to it (LoRA's B
matrix is zero at init), so the first importance ratios and KL are exactly 1 and 0. The saved PPO adapter
records the adapters merged under it (``STACK_FILE``), and ``load_policy`` rebuilds the policy from it.

``ActorCritic`` wraps the lot in one ``nn.Module`` so accelerate and DeepSpeed see one model and one optimizer
(actor and critic parameters in two groups with their own learning rates); its ``forward`` runs the pass a
phase needs (``policy``, ``reference``, ``value`` or ``train`` = policy and value together).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn


if TYPE_CHECKING:
    from hermes_train.config import Recipe

POLICY_ADAPTER = "default"
CRITIC_ADAPTER = "critic"
STACK_FILE = "hermes_adapter_stack.json"  # in a saved PPO adapter: the adapters merged into the base beneath it
VALUE_HEAD_FILE = "value_head.pt"


def load_merged_base(recipe: Recipe, merged: list[str | Path], **model_kwargs):
    """The recipe's base model with ``merged`` adapters folded into its weights, in order."""
    from peft import PeftModel

    from hermes_train.models import load_causal_lm

    model = load_causal_lm(recipe.model, **model_kwargs)
    for adapter in merged:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model


def load_policy(recipe: Recipe, adapter_dir: str | Path, **model_kwargs):
    """A trained policy for evaluation or export: the base, the adapters recorded beneath ``adapter_dir``
    merged in, and ``adapter_dir`` on top (a ``PeftModel``). Works for SFT adapters too (nothing beneath)."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    stack_file = adapter_dir / STACK_FILE
    beneath = json.loads(stack_file.read_text(encoding="utf-8"))["merged"] if stack_file.is_file() else []
    return PeftModel.from_pretrained(load_merged_base(recipe, beneath, **model_kwargs), str(adapter_dir))


class ActorCritic(nn.Module):
    """Actor (policy adapter), reference (adapters off) and critic (value head + critic adapter) in one module."""

    def __init__(self, policy, value_head: nn.Linear, critic=None):
        super().__init__()
        self.policy = policy  # PeftModel: adapters "default" (actor) and, for shared_base, "critic"
        self.critic = critic  # None (shared base) or a separate PeftModel with adapter "critic"
        self.value_head = value_head
        self.config = policy.get_base_model().config  # accelerate sizes DeepSpeed's "auto" buckets from it
        # PEFT's set_adapter leaves only the active adapter trainable; both must stay so (one optimizer, one
        # backward through actor and critic), so the trainable set is remembered and restored after switching.
        self._trainable = [p for p in self.parameters() if p.requires_grad]

    # What TRL's unwrap_model_for_generation asks of a model: checkpointing is off while generating.
    @property
    def is_gradient_checkpointing(self) -> bool:
        base = self.policy.get_base_model()
        return bool(getattr(base, "is_activation_checkpointing", getattr(base, "is_gradient_checkpointing", False)))

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None) -> None:
        if self.critic is None:
            # The recomputation in backward would run under whichever adapter is active then: the critic's
            # activations would be recomputed with the actor's adapter, and its gradients silently wrong.
            raise NotImplementedError("gradient checkpointing with ppo.critic: shared_base is not supported (use ppo.critic: separate)")
        for model in filter(None, (self.policy, self.critic)):
            model.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)

    def gradient_checkpointing_disable(self) -> None:
        for model in filter(None, (self.policy, self.critic)):
            model.get_base_model().gradient_checkpointing_disable()

    @property
    def critic_model(self):
        return self.critic if self.critic is not None else self.policy

    def actor_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.policy.named_parameters() if p.requires_grad and f".{POLICY_ADAPTER}." in n]

    def critic_parameters(self) -> list[nn.Parameter]:
        actor = {id(p) for p in self.actor_parameters()}
        return [p for p in self._trainable if id(p) not in actor]

    def _activate(self, model, adapter: str) -> None:
        if model.active_adapter != adapter:
            model.set_adapter(adapter)
            for p in self._trainable:
                p.requires_grad_(True)

    def policy_logits(self, input_ids, attention_mask):
        self._activate(self.policy, POLICY_ADAPTER)
        return self.policy(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    def reference_logits(self, input_ids, attention_mask):
        with self.policy.disable_adapter():
            return self.policy(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    def action_logprobs(self, input_ids, attention_mask, action_mask, temperature: float, reference: bool = False,
                        entropy_grad: bool = False) -> dict[str, torch.Tensor]:
        """Log-probs of the policy's own tokens (``action_mask``), one per position like the rollout's (0 elsewhere;
        column 0 has no predecessor), and their mean entropy.

        The LM head runs only where a policy token is predicted, not over the whole sequence: most of an episode
        is system prompt and tool results, and with a large vocabulary the full logits (batch x length x vocab
        floats) would dominate the update's time and memory.
        """
        from trl.trainer.utils import entropy_from_logits, selective_log_softmax

        causal_lm = self.policy.get_base_model()
        if not reference:
            self._activate(self.policy, POLICY_ADAPTER)
        with self.policy.disable_adapter() if reference else contextlib.nullcontext():
            hidden = causal_lm.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        predicts_action = action_mask[:, 1:].bool()  # position t predicts token t + 1
        logits = causal_lm.get_output_embeddings()(hidden[:, :-1][predicts_action]).float() / temperature
        chosen = selective_log_softmax(logits, input_ids[:, 1:][predicts_action])
        logprobs = torch.zeros(predicts_action.shape, dtype=chosen.dtype, device=chosen.device).masked_scatter(predicts_action, chosen)
        with torch.enable_grad() if entropy_grad else torch.no_grad():
            entropy = entropy_from_logits(logits).mean() if len(logits) else logits.new_zeros(())
        return {"logprobs": torch.nn.functional.pad(logprobs, (1, 0)), "entropy": entropy}

    def values(self, input_ids, attention_mask):
        model = self.critic_model
        self._activate(model, CRITIC_ADAPTER)
        # The decoder without the LM head: the critic needs the last hidden state, not vocabulary logits.
        hidden = model.get_base_model().base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)
        if self.critic is None:
            self._activate(self.policy, POLICY_ADAPTER)  # generation and saving expect the actor active
        return values

    def forward(self, input_ids, attention_mask, mode: str = "train", action_mask=None, temperature: float = 1.0,
                entropy_grad: bool = False) -> dict[str, torch.Tensor]:
        # One entry point, so that DeepSpeed's engine (whose forward is the module's) runs every pass.
        if action_mask is not None and mode in ("reference", "train"):  # log-probs of the policy's tokens only
            out = self.action_logprobs(input_ids, attention_mask, action_mask, temperature, reference=mode == "reference",
                                       entropy_grad=entropy_grad)
            if mode == "train":
                out["values"] = self.values(input_ids, attention_mask)
            return out
        if mode == "policy":
            return {"logits": self.policy_logits(input_ids, attention_mask)}
        if mode == "reference":
            return {"logits": self.reference_logits(input_ids, attention_mask)}
        if mode == "value":
            return {"values": self.values(input_ids, attention_mask)}
        if mode == "train":
            values = self.values(input_ids, attention_mask)
            return {"logits": self.policy_logits(input_ids, attention_mask), "values": values}
        raise ValueError(f"unknown ActorCritic mode {mode!r}")


def build_actor_critic(recipe: Recipe, start_adapter: Path | None, **model_kwargs) -> ActorCritic:
    """Load the base (with ``start_adapter`` merged in), add the actor and critic adapters and the value head."""
    from peft import get_peft_model

    from hermes_train.models import lora_config

    merged = [start_adapter] if start_adapter is not None else []
    base = load_merged_base(recipe, merged, **model_kwargs)
    policy = get_peft_model(base, lora_config(recipe), adapter_name=POLICY_ADAPTER)
    critic = None
    if recipe.ppo.critic == "shared_base":
        policy.add_adapter(CRITIC_ADAPTER, lora_config(recipe))
    else:
        critic = get_peft_model(load_merged_base(recipe, merged, **model_kwargs), lora_config(recipe), adapter_name=CRITIC_ADAPTER)
    policy.set_adapter(POLICY_ADAPTER)  # freezes every other adapter: the trainable set is fixed just below
    for model in (policy, critic):
        if model is not None:
            for name, param in model.named_parameters():
                param.requires_grad_("lora_" in name)
    hidden_size = base.config.get_text_config().hidden_size
    value_head = nn.Linear(hidden_size, 1, dtype=torch.float32)
    nn.init.normal_(value_head.weight, std=1.0 / (hidden_size + 1) ** 0.5)
    nn.init.zeros_(value_head.bias)
    model = ActorCritic(policy, value_head, critic)
    # No dropout in PPO: it would make the importance ratio differ from 1 before any update (LoRA dropout too).
    from trl.trainer.utils import disable_dropout_in_model

    disable_dropout_in_model(model)
    model.merged_adapters = [str(Path(a).resolve()) for a in merged]
    return model


def trainable_state_dict(model: ActorCritic, zero3: bool) -> dict[str, torch.Tensor]:
    """The trainable tensors (adapters, value head) on CPU, gathered from every rank under ZeRO-3."""
    trainable = {id(p) for p in model._trainable}
    named = [(n, p) for n, p in model.named_parameters() if id(p) in trainable]
    if zero3:
        import deepspeed

        with deepspeed.zero.GatheredParameters([p for _, p in named], modifier_rank=None):
            return {n: p.detach().cpu().clone() for n, p in named}
    return {n: p.detach().cpu().clone() for n, p in named}


def save_adapters(model: ActorCritic, state: dict[str, torch.Tensor], out: Path, tokenizer=None) -> None:
    """Write the actor adapter to ``out`` (an ordinary PEFT folder, plus the stack file) and the critic (its
    adapter and the value head) to ``out/critic``, from ``trainable_state_dict``'s tensors."""
    from peft import get_peft_model_state_dict

    out.mkdir(parents=True, exist_ok=True)
    policy_state = {k.removeprefix("policy."): v for k, v in state.items() if k.startswith("policy.")}
    # PEFT picks the actor's tensors out of the full-key state dict itself.
    model.policy.save_pretrained(str(out), selected_adapters=[POLICY_ADAPTER], state_dict=policy_state)
    (out / STACK_FILE).write_text(json.dumps({"merged": model.merged_adapters}, indent=2) + "\n", encoding="utf-8")
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))

    critic_dir = out / "critic"
    critic_dir.mkdir(exist_ok=True)
    prefix = "critic." if model.critic is not None else "policy."
    critic_state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    critic_weights = get_peft_model_state_dict(model.critic_model, state_dict=critic_state, adapter_name=CRITIC_ADAPTER)
    model.critic_model.peft_config[CRITIC_ADAPTER].save_pretrained(str(critic_dir))
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in critic_weights.items()}, str(critic_dir / "adapter_model.safetensors"))
    torch.save({k.removeprefix("value_head."): v for k, v in state.items() if k.startswith("value_head.")}, critic_dir / VALUE_HEAD_FILE)

