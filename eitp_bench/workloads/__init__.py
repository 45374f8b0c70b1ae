"""Workloads: GPT-2 models, the arms' training objectives, and the compression pipeline.

models.py      build_model, count_parameters, SIZES
objectives.py  make_objective(arm) -> baseline | eitp-paper | eitp-coded
eitp_paper.py  the paper's formulas, computed honestly and differentiably
eitp_coded.py  the reference code's loss, reproduced term by term
compress.py    packed size on disk (bitmask for pruned weights, int8 tied embedding), int8 control arm,
               EIT-P's prune → distil → quantise pipeline

One job: the arms' work (training, evaluation, generation, compression, theory tasks), run inside the
energy windows the runner opens. The arms themselves are named in suite/arms.py.
May import: suite, energy, theory, hardware and the shared vocabulary; never the runner, store or
anything downstream.
"""
