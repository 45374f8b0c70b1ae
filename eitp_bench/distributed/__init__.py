"""Multi-rank repetitions on torch's elastic launcher (torchrun): launch.py starts the ranks, ranks.py is
one rank's view (device, data shard, which tasks it runs), energy_gather.py counts every sensor once."""
