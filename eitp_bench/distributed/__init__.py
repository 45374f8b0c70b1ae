"""Multi-rank repetitions on torch's elastic launcher (torchrun): launch.py starts the ranks, ranks.py is
one rank's view (device, data shard, which tasks it runs), energy_gather.py counts every sensor once.

May import: energy, hardware, workloads, suite and the shared vocabulary; the runner imports it.
"""
