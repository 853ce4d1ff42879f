"""Looking inside the model: activations (every activation by name, hooks that read or change them), circuits
(logit attribution, induction scores, ablation, activation patching), induction (watch an induction head form)."""
