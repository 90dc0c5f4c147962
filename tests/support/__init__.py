"""Test support shared by the suite, the demo and the benchmarks: a real registry,
images built here from busybox-static, and helpers to run `rl` as the test users."""
