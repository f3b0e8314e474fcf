"""Everything that touches a session or the machine: the timing loop, a case in an isolated worker,
workloads made into feeds, the targets this machine can run, the interleaved re-timing of close rows, the
environment, NVML and onnxruntime's profiler."""
