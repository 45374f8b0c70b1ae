"""Analysis: the one stage between the store and every output (report, compare, regress)."""
