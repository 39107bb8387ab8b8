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
records the adapters merged under it (``STACK_FILE``), and ``runtime.models.load_policy`` rebuilds the policy from it.

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

from hermes_train.errors import HermesTrainError
from hermes_train.runtime.models import STACK_FILE, load_merged_base

if TYPE_CHECKING:
    from hermes_train.config import Recipe

POLICY_ADAPTER = "default"
CRITIC_ADAPTER = "critic"
VALUE_HEAD_FILE = "value_head.pt"


def decoder_of(model) -> nn.Module:
    """The decoder stack (embeddings, ``layers``, ``norm``, ``rotary_emb``) of a causal LM or a PeftModel of one."""
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    return causal_lm.base_model


@contextlib.contextmanager
def adapter_in(layer: nn.Module, adapter: str):
    """Run the LoRA modules inside ``layer`` under ``adapter``, whatever the model's active adapter is then.

    For activation checkpointing on a shared base: backward recomputes a layer after the forward has moved on to
    another adapter (the critic's pass follows the actor's), so the recomputation must bring its own. Set per
    module, not with ``PeftModel.set_adapter``, which would also flip ``requires_grad`` in the middle of backward.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    modules = [m for m in layer.modules() if isinstance(m, BaseTunerLayer)]
    saved = [m._active_adapter for m in modules]
    for m in modules:
        m._active_adapter = adapter
    try:
        yield
    finally:
        for m, active in zip(modules, saved):
            m._active_adapter = active


def run_layers(decoder: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor, layers,
               checkpoint_adapter: str | None = None) -> torch.Tensor:
    """``layers`` of ``decoder`` over ``hidden``, the way the model's own forward runs them (causal mask from the
    padding mask, rotary embeddings of positions 0..T-1), so that one forward can be split into a frozen trunk
    and the adapted layers above it. With ``checkpoint_adapter`` each layer keeps only its input and is
    recomputed in backward, under that adapter."""
    from torch.utils.checkpoint import checkpoint
    from transformers.masking_utils import create_causal_mask

    position_ids = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
    mask = create_causal_mask(config=decoder.config, inputs_embeds=hidden, attention_mask=attention_mask, cache=None,
                              position_ids=position_ids)
    options = {"attention_mask": mask, "position_embeddings": decoder.rotary_emb(hidden, position_ids=position_ids),
               "position_ids": position_ids}

    def recomputable(layer, hidden):
        with adapter_in(layer, checkpoint_adapter):
            return layer(hidden, **options)

    for layer in layers:
        hidden = checkpoint(recomputable, layer, hidden, use_reentrant=False) if checkpoint_adapter else layer(hidden, **options)
    return hidden


class ActorCritic(nn.Module):
    """Actor (policy adapter), reference (adapters off) and critic in one module.

    Every pass is split at ``trunk_layers``: the decoder layers beneath the lowest adapted one (``lora.layers``)
    compute the same hidden states for the actor, the reference and the critic, so ``trunk`` runs them once per
    episode, without gradients, and every other pass starts from its output (0 trunk layers = the embeddings).
    The critic is a value head on the last hidden state under the ``critic`` adapter (``shared_base``) or of a
    separate copy of the base (``separate``), or a small head on the trunk's output (``trunk_head``), which then
    costs no pass of its own.
    """

    def __init__(self, policy, value_head: nn.Module, critic=None, trunk_layers: int = 0, critic_kind: str = "shared_base"):
        super().__init__()
        self.policy = policy  # PeftModel: adapters "default" (actor) and, for shared_base, "critic"
        self.critic = critic  # None (shared base, trunk head) or a separate PeftModel with adapter "critic"
        self.value_head = value_head
        self.trunk_layers = trunk_layers
        self.critic_kind = critic_kind
        self.checkpointing = False
        self.config = policy.get_base_model().config  # accelerate sizes DeepSpeed's "auto" buckets from it
        for decoder in {id(d): d for d in map(decoder_of, filter(None, (policy, critic)))}.values():
            kinds = {getattr(layer, "attention_type", "full_attention") for layer in decoder.layers}
            if kinds != {"full_attention"}:
                raise HermesTrainError(f"PPO supports models whose layers all use full attention, not {sorted(kinds)}")
        # PEFT's set_adapter leaves only the active adapter trainable; both must stay so (one optimizer, one
        # backward through actor and critic), so the trainable set is remembered and restored after switching.
        self._trainable = [p for p in self.parameters() if p.requires_grad]

    # What TRL's unwrap_model_for_generation asks of a model: checkpointing is off while generating (it only
    # ever applies to the adapted layers of a pass with gradients, see adapter_in).
    @property
    def is_gradient_checkpointing(self) -> bool:
        return self.checkpointing

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None) -> None:
        self.checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        self.checkpointing = False

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

    def trunk(self, input_ids, attention_mask) -> torch.Tensor:
        """Hidden states after the frozen layers: the same for actor, reference and critic, so never recomputed."""
        decoder = decoder_of(self.policy)
        with torch.no_grad():
            return run_layers(decoder, decoder.embed_tokens(input_ids), attention_mask, decoder.layers[: self.trunk_layers])

    def _last_hidden(self, model, trunk, attention_mask) -> torch.Tensor:
        decoder = decoder_of(model)
        # Only passes with gradients (the update's, never the reference's) are checkpointed, under their adapter.
        adapter = model.active_adapter if self.checkpointing and torch.is_grad_enabled() else None
        return decoder.norm(run_layers(decoder, trunk, attention_mask, decoder.layers[self.trunk_layers :], adapter))

    def _policy_hidden(self, trunk, attention_mask, reference: bool) -> torch.Tensor:
        if reference:
            with self.policy.disable_adapter():
                return self._last_hidden(self.policy, trunk, attention_mask)
        self._activate(self.policy, POLICY_ADAPTER)
        return self._last_hidden(self.policy, trunk, attention_mask)

    def action_logprobs(self, trunk, input_ids, attention_mask, action_mask, temperature: float, reference: bool = False,
                        entropy_grad: bool = False) -> dict[str, torch.Tensor]:
        """Log-probs of the policy's own tokens (``action_mask``), one per position like the rollout's (0 elsewhere;
        column 0 has no predecessor), and their mean entropy.

        The LM head runs only where a policy token is predicted, not over the whole sequence: most of an episode
        is system prompt and tool results, and with a large vocabulary the full logits (batch x length x vocab
        floats) would dominate the update's time and memory.
        """
        from trl.trainer.utils import entropy_from_logits, selective_log_softmax

        hidden = self._policy_hidden(trunk, attention_mask, reference)
        predicts_action = action_mask[:, 1:].bool()  # position t predicts token t + 1
        head = self.policy.get_base_model().get_output_embeddings()
        logits = head(hidden[:, :-1][predicts_action]).float() / temperature
        chosen = selective_log_softmax(logits, input_ids[:, 1:][predicts_action])
        logprobs = torch.zeros(predicts_action.shape, dtype=chosen.dtype, device=chosen.device).masked_scatter(predicts_action, chosen)
        with torch.enable_grad() if entropy_grad else torch.no_grad():
            entropy = entropy_from_logits(logits).mean() if len(logits) else logits.new_zeros(())
        return {"logprobs": torch.nn.functional.pad(logprobs, (1, 0)), "entropy": entropy}

    def values(self, trunk, attention_mask) -> torch.Tensor:
        if self.critic_kind == "trunk_head":
            hidden = trunk
        else:
            model = self.critic_model
            self._activate(model, CRITIC_ADAPTER)
            hidden = self._last_hidden(model, trunk, attention_mask)
            if self.critic is None:
                self._activate(self.policy, POLICY_ADAPTER)  # generation and saving expect the actor active
        first = next(self.value_head.parameters())
        return self.value_head(hidden.to(first.dtype)).squeeze(-1)

    def forward(self, input_ids, attention_mask, mode: str = "train", action_mask=None, temperature: float = 1.0,
                entropy_grad: bool = False, trunk=None) -> dict[str, torch.Tensor]:
        # One entry point, so that DeepSpeed's engine (whose forward is the module's) and accelerate's autocast
        # run every pass. ``trunk`` is ``mode="trunk"``'s output for these rows, when the caller kept it.
        if trunk is None:
            trunk = self.trunk(input_ids, attention_mask)
        if mode == "trunk":
            return {"trunk": trunk}
        if mode == "value":
            return {"values": self.values(trunk, attention_mask)}
        if mode in ("policy", "reference") and action_mask is None:  # full vocabulary logits (tests, probes)
            hidden = self._policy_hidden(trunk, attention_mask, reference=mode == "reference")
            return {"logits": self.policy.get_base_model().get_output_embeddings()(hidden)}
        if mode in ("reference", "train"):
            out = self.action_logprobs(trunk, input_ids, attention_mask, action_mask, temperature,
                                       reference=mode == "reference", entropy_grad=entropy_grad)
            if mode == "train":
                out["values"] = self.values(trunk, attention_mask)
            return out
        raise ValueError(f"unknown ActorCritic mode {mode!r}")


def value_head_for(recipe: Recipe, hidden_size: int) -> nn.Module:
    """A linear head on the last hidden state, or for ``trunk_head`` a small MLP on the (un-normalised) trunk
    output, which has no adapted layers above it to shape its features."""
    if recipe.ppo.critic == "trunk_head":
        head = nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, 256), nn.Tanh(), nn.Linear(256, 1))
        nn.init.zeros_(head[-1].weight)
        nn.init.zeros_(head[-1].bias)
        return head
    head = nn.Linear(hidden_size, 1, dtype=torch.float32)
    nn.init.normal_(head.weight, std=1.0 / (hidden_size + 1) ** 0.5)
    nn.init.zeros_(head.bias)
    return head


def build_actor_critic(recipe: Recipe, start_adapter: Path | None, **model_kwargs) -> ActorCritic:
    """Load the base (with ``start_adapter`` merged in), add the actor and critic adapters and the value head."""
    from peft import get_peft_model

    from hermes_train.runtime.models import decoder_layer_count, lora_config

    merged = [start_adapter] if start_adapter is not None else []
    base = load_merged_base(recipe, merged, **model_kwargs)
    config = lora_config(recipe, base)
    trunk_layers = decoder_layer_count(base) - recipe.lora.layers if recipe.lora.layers else 0
    policy = get_peft_model(base, config, adapter_name=POLICY_ADAPTER)
    critic = None
    if recipe.ppo.critic == "shared_base":
        policy.add_adapter(CRITIC_ADAPTER, config)
    elif recipe.ppo.critic == "separate":
        critic = get_peft_model(load_merged_base(recipe, merged, **model_kwargs), config, adapter_name=CRITIC_ADAPTER)
    policy.set_adapter(POLICY_ADAPTER)  # freezes every other adapter: the trainable set is fixed just below
    for model in (policy, critic):
        if model is not None:
            for name, param in model.named_parameters():
                param.requires_grad_("lora_" in name)
    value_head = value_head_for(recipe, base.config.get_text_config().hidden_size)
    model = ActorCritic(policy, value_head, critic, trunk_layers=trunk_layers, critic_kind=recipe.ppo.critic)
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
    if model.critic_kind != "trunk_head":  # a trunk head is the value head alone
        from safetensors.torch import save_file

        prefix = "critic." if model.critic is not None else "policy."
        critic_state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        critic_weights = get_peft_model_state_dict(model.critic_model, state_dict=critic_state, adapter_name=CRITIC_ADAPTER)
        model.critic_model.peft_config[CRITIC_ADAPTER].save_pretrained(str(critic_dir))
        save_file({k: v.contiguous() for k, v in critic_weights.items()}, str(critic_dir / "adapter_model.safetensors"))
    torch.save({k.removeprefix("value_head."): v for k, v in state.items() if k.startswith("value_head.")}, critic_dir / VALUE_HEAD_FILE)

