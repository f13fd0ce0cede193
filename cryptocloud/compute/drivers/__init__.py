"""Workload drivers of the compute daemon (see ``base.WorkloadDriver``)."""
