"""Meters turn hardware counters into joules; the monitor turns them into named windows."""
