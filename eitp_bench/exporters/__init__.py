"""Exporters: the store's and the analysis' results in formats other tools read (Prometheus, MLflow).

They read analysis/store outputs and compute no figure of their own (docs/integrations.md).

May import: report, analysis, store and the shared vocabulary; only commands/ import exporters.
"""
