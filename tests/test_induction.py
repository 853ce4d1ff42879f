"""The induction-formation run, briefly: seeded, its records complete, the global thread count left as it was.
(The full run, with its phase change asserted, is notebook 11b under nbval.)"""

import torch

from gptj_teach.interpret.induction import first_step_below, induction_config, train_induction


def test_a_short_run_is_seeded_and_records_what_it_promises():
    threads = torch.get_num_threads()
    config = induction_config(vocab_size=32, n=8, n_embd=32, n_head=2)
    with torch.no_grad():  # training turns autograd on for itself
        runs = [train_induction(steps=20, n=8, batch=8, seed=5, every=10, config=config) for _ in range(2)]
    (model, history), (_, again) = runs
    assert torch.get_num_threads() == threads and not model.training
    assert [r["step"] for r in history] == [10, 20]
    assert set(history[0]) == {"step", "seconds", "first", "second", "score", "head"}
    for mine, other in zip(history, again):  # the same seed, ops and shapes: the same numbers, bit for bit (time aside)
        assert {k: v for k, v in mine.items() if k != "seconds"} == {k: v for k, v in other.items() if k != "seconds"}
    assert abs(history[0]["first"] - torch.log(torch.tensor(32.0)).item()) < 0.5  # random tokens: about ln(vocab)


def test_first_step_below_reads_the_history():
    history = [
        {"step": 10, "seconds": 1.0, "first": 5.0, "second": 4.0},
        {"step": 20, "seconds": 2.0, "first": 5.0, "second": 2.4},
    ]
    assert first_step_below(history) == (20, 2.0) and first_step_below(history, 0.1) == (None, None)
