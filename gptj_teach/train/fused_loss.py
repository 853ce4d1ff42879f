"""The output layer and the cross-entropy in one step, for training a small GPT-J fast on a CPU.

At the tiny model's width the output layer (n_embd x vocab) costs more than all the blocks together.
``F.cross_entropy(lm_head(h), targets)`` makes several passes over the (tokens x vocab) logits: log-softmax,
a zero-filled gradient, its backward. Here the gradient of the loss with respect to the logits,
``(softmax - one_hot) / N``, is made in the forward pass, chunk by chunk, and kept in bf16; the backward pass
is then two matmuls. Matmuls in bf16 are ~2.4x faster than fp32 on CPUs with AVX512-BF16; the softmax is in
fp32. ``tests/test_training.py`` checks loss and gradients against the plain fp32 path.

References: Wijmans et al. (2024) "Cut your losses in large-vocabulary language models" (the same idea, done
fully); PyTorch ``torch.autograd.Function``.
"""

import torch


class LinearCrossEntropy(torch.autograd.Function):
    """``cross_entropy(h @ weight.T + bias, targets)``: h (N, d), weight (V, d), bias (V,), targets (N,)."""

    @staticmethod
    def forward(ctx, h, weight, bias, targets, chunk=1024):
        hb, wb, bb = h.to(torch.bfloat16), weight.to(torch.bfloat16), bias.to(torch.bfloat16)
        grad = torch.empty(len(targets), len(bias), dtype=torch.bfloat16, device=h.device)  # (N, V): dloss/dlogits
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for start in range(0, len(targets), chunk):
            rows, t = hb[start : start + chunk], targets[start : start + chunk]
            logits = torch.addmm(bb, rows, wb.T).float()  # (chunk, d) @ (d, V) -> (chunk, V)
            target_logit = logits.gather(1, t[:, None]).squeeze(1)  # (chunk,)
            peak = logits.max(-1, keepdim=True).values  # (chunk, 1)
            p = logits.sub_(peak).exp_()  # in place: unnormalised probabilities
            norm = p.sum(-1, keepdim=True)  # (chunk, 1)
            total += ((norm.log() + peak).squeeze(1) - target_logit).sum()  # log-sum-exp - target logit
            p.div_(norm * len(targets))  # softmax / N
            p[torch.arange(len(t)), t] -= 1 / len(targets)  # - one_hot / N
            grad[start : start + chunk] = p
        ctx.save_for_backward(grad, hb, wb)
        ctx.dtypes = h.dtype, weight.dtype
        return total / len(targets)

    @staticmethod
    def backward(ctx, grad_out):
        grad, hb, wb = ctx.saved_tensors
        h_dtype, w_dtype = ctx.dtypes
        grad_h = (grad @ wb).to(h_dtype) * grad_out  # (N, V) @ (V, d) -> (N, d)
        grad_w = (grad.T @ hb).to(w_dtype) * grad_out  # (V, N) @ (N, d) -> (V, d)
        return grad_h, grad_w, grad.sum(0, dtype=torch.float32).to(w_dtype) * grad_out, None, None
