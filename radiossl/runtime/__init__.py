"""Where a process computes: the device, its precision and what the CPU computes natively.

Every stage imports these (training, clustering, evaluation, the demo, benchmarks); they import
nothing of radiossl but its errors, so any module may use them.
"""
