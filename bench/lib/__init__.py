"""What the benchmark scripts of bench/ share; each module has one purpose (see its docstring).

    wrk      running wrk and reading its report (bench/wrk-report.lua)
    machine  facts about the machine and the software measured: CPUs, load, versions
    procfs   readings of /proc: CPU time of processes and of each CPU, children, memory
    procs    starting, bounding, waiting for and stopping child processes
    stats    medians, percentiles, per-request figures and ratios
    rounds   the rotated order of interleaved measurement rounds
    engines  pacslb's model and renderers, and HAProxy configuration files, as the benchmarks use them
    report   results files and a benchmark's own section of bench/README.md
    cli      command-line options the benchmark scripts have in common
    checkout the checkout a script runs from: its folders, pacslb and tests/support importable
    script   a script's main around its measurement: results options, --report, root, SIGTERM, publishing

The scripts are run as files (``python bench/run.py``), so bench/ is on sys.path and this package
imports as ``lib``; the scripts that are loaded by path (tests/bench) put bench/ there themselves.
"""
