"""Placement of vHSMs on device nodes and service instances on service
nodes: filters drop nodes that cannot take the workload, weighers order
the rest (see :mod:`cryptocloud.conductor.scheduler.scheduler`)."""
