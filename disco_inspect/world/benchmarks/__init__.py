"""Benchmarks of the audit on the bundled world, where every planted bias is known.

``handpicked`` audits the shipped example classifiers; ``randomised`` draws random biased classifiers (and the
saturated variant) and ranks the audit's findings against ground truth; ``edits`` measures counterfactual editing;
``fewshot`` is the paper's Table 2 (few-shot training with and without DisCo images); ``oracle_fid`` scores generated
images with the oracle's features; ``quality`` reads the generator's factor accuracy with the oracle. These are users
of the world (``disco_inspect.world``) and of everything below it; nothing in the world model imports them.
"""
