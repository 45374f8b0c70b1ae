"""Meters turn hardware counters into joules; the monitor turns them into named windows.

One job: joules, each with how it was obtained (counter, sampled, estimated) and a flag for every fault.
nvml/ (GPUs) and rapl/ (CPU packages) are packages split by job; the other meters are one module each.

May import: hardware and the shared vocabulary (records, flags, errors, process_tree). Never the
workloads measured inside its windows, nor anything downstream.
"""
