"""The SFT stage: LoRA on the weighted mix through TRL's SFTTrainer, with shared-prefix packing."""
