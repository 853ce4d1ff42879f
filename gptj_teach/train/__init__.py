"""Training your own: corpus (the Python standard library as token windows), loop (AdamW, the schedule, fit,
evaluate), fused_loss (the lm_head and the loss in chunks, so the full logits never exist at once)."""
