"""perfkit doctor's machine checks: on fake /proc and /sys trees, and once on this machine."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from perfkit.measure.machine import (
    CHECKS,
    CLOCK_TICKS,
    Finding,
    Sample,
    Snapshot,
    cpu_users,
    machine_findings,
    steal,
    take_snapshot,
)

NAMES = ["governor", "boost", "smt", "load", "cpu users", "steal", "memory", "thermal", "isolated cpus", "threads"]
CPU = "sys/devices/system/cpu"
QUIET = Sample(Snapshot((100, 0, 100, 800, 0, 0, 0, 0), {}, 0.0), Snapshot((200, 0, 200, 1600, 0, 0, 0, 0), {}, 0.5))


def tree(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def findings(root: Path, sample: Sample = QUIET) -> dict[str, Finding]:
    return {name: check(root, sample) for name, check in CHECKS.items()}


def cpuinfo(cores: int) -> str:
    return "".join(f"processor\t: {i}\nphysical id\t: 0\nsiblings\t: {cores}\ncore id\t\t: {i}\n\n"
                   for i in range(cores))


def proc_stat(pid: int, name: str, utime: int, stime: int) -> str:
    return f"{pid} ({name}) R 1 {pid} {pid} 0 -1 4194560 100 0 0 0 {utime} {stime} 0 0 20 0 1 0 5000 1000 200\n"


def test_a_performance_governor_is_ok_and_powersave_is_warned_with_its_fix(tmp_path):
    performance = tree(tmp_path / "a", {f"{CPU}/cpu{i}/cpufreq/scaling_governor": "performance\n" for i in range(4)})
    assert findings(performance)["governor"] == Finding("governor", "ok", "performance on all 4 CPUs", "")
    mixed = tree(tmp_path / "b", {f"{CPU}/cpu0/cpufreq/scaling_governor": "performance\n",
                                  f"{CPU}/cpu1/cpufreq/scaling_governor": "powersave\n",
                                  f"{CPU}/cpu2/cpufreq/scaling_governor": "powersave\n"})
    found = findings(mixed)["governor"]
    assert found.status == "warn" and found.seen.startswith("governor powersave on 2 of 3 CPUs")
    assert found.fix.startswith("sudo cpupower frequency-set -g performance")


def test_boost_on_is_warned_with_the_switch_that_turns_it_off(tmp_path):
    acpi = findings(tree(tmp_path / "acpi", {f"{CPU}/cpufreq/boost": "1\n"}))["boost"]
    assert acpi.status == "warn" and acpi.fix.startswith("echo 0 | sudo tee /sys/devices/system/cpu/cpufreq/boost")
    intel = findings(tree(tmp_path / "intel", {f"{CPU}/intel_pstate/no_turbo": "0\n"}))["boost"]
    assert intel.status == "warn" and intel.fix.startswith("echo 1 | sudo tee /sys/devices/system/cpu/intel_pstate")
    off = findings(tree(tmp_path / "off", {f"{CPU}/cpufreq/boost": "0\n"}))["boost"]
    assert off == Finding("boost", "ok", "turbo boost off", "")


def test_smt_on_says_how_to_keep_to_one_cpu_per_core(tmp_path):
    siblings = {f"{CPU}/cpu{i}/topology/thread_siblings_list": f"{i % 4},{i % 4 + 4}\n" for i in range(8)}
    found = findings(tree(tmp_path / "on", {**siblings, f"{CPU}/smt/active": "1\n"}))["smt"]
    assert found.status == "info" and "8 logical CPUs on 4 cores" in found.seen
    assert found.fix == "--threads 4 or fewer, or taskset -c 0-3 (one CPU per core)"
    alone = {f"{CPU}/cpu{i}/topology/thread_siblings_list": f"{i}\n" for i in range(4)}
    assert findings(tree(tmp_path / "off", alone))["smt"].status == "ok"
    switched_off = {**siblings, f"{CPU}/smt/active": "0\n"}  # the kernel's own word wins over the topology files
    assert findings(tree(tmp_path / "switched off", switched_off))["smt"].status == "ok"


def test_a_load_above_half_a_cpu_each_is_warned(tmp_path):
    busy = findings(tree(tmp_path / "busy", {"proc/loadavg": "1.20 2.00 1.00 3/200 999\n", "proc/cpuinfo": cpuinfo(2)}))
    assert busy["load"].status == "warn" and busy["load"].seen == "1-minute load 1.20 on 2 CPUs (0.60 per CPU)"
    assert busy["load"].fix.startswith("close other programs")
    calm = findings(tree(tmp_path / "calm", {"proc/loadavg": "0.90 0.50 0.40 1/200 999\n", "proc/cpuinfo": cpuinfo(2)}))
    assert calm["load"].status == "ok"


def test_a_snapshot_reads_the_cpu_line_and_each_process_cpu_time(tmp_path):
    root = tree(tmp_path, {
        "proc/stat": "cpu  10 1 20 300 4 0 2 7 0 0\ncpu0 5 0 10 150 2 0 1 3 0 0\n",
        "proc/12/stat": proc_stat(12, "odd) name (x", utime=30, stime=12),  # a name may hold ") " itself
        "proc/13/stat": "13 (truncated) R 1\n",
        "proc/sys/kernel/hostname": "not a process\n",
    })
    snapshot = take_snapshot(root)
    assert snapshot.cpu == (10, 1, 20, 300, 4, 0, 2, 7, 0, 0)
    assert snapshot.process_ticks == {12: 42}


def test_the_programs_using_cpu_are_named_from_two_snapshots(tmp_path):
    ticks_used = int(0.4 * CLOCK_TICKS)  # 0.4 s of CPU in 0.5 s: 80 % of a core
    root = tree(tmp_path, {"proc/10/comm": "burner\n", "proc/11/comm": "sleeper\n", "proc/12/comm": "perfkit\n"})
    (root / "proc/self").symlink_to("12")  # this process: left out however busy
    for pid, name in ((10, "burner"), (11, "sleeper"), (12, "perfkit")):
        (root / f"proc/{pid}/stat").write_text(proc_stat(pid, name, 100, 0))
    before = dataclasses.replace(take_snapshot(root), taken=0.0)
    (root / "proc/10/stat").write_text(proc_stat(10, "burner", 100 + ticks_used, 0))
    (root / "proc/12/stat").write_text(proc_stat(12, "perfkit", 100 + 2 * ticks_used, 0))
    after = dataclasses.replace(take_snapshot(root), taken=0.5)
    found = cpu_users(root, Sample(before, after))
    assert found.status == "warn" and found.seen == "burner (pid 10) 80% of a core over 0.5 s"
    assert found.fix.startswith("stop them while you measure")


def test_a_program_under_a_tenth_of_a_core_is_only_mentioned(tmp_path):
    root = tree(tmp_path, {"proc/10/comm": "editor\n"})
    sample = Sample(Snapshot((), {10: 0}, 0.0), Snapshot((), {10: int(0.05 * CLOCK_TICKS)}, 1.0))
    found = cpu_users(root, sample)
    assert found == Finding("cpu users", "ok", "no other program above 10% of a core (busiest: editor (pid 10) 5%)", "")


def test_steal_is_the_share_of_cpu_time_a_neighbour_took_between_two_snapshots(tmp_path):
    before = Snapshot((1000, 0, 1000, 8000, 0, 0, 0, 0, 0, 0), {}, 0.0)
    after = Snapshot((1100, 0, 1100, 8700, 0, 0, 0, 100, 0, 0), {}, 1.0)  # 100 of 1000 ticks stolen
    found = steal(tmp_path, Sample(before, after))
    assert found.status == "warn" and found.seen.startswith("steal 10.0% of CPU time; CPUs 20% busy over 1.0 s")
    assert "bare-metal" in found.fix
    assert steal(tmp_path, QUIET) == Finding("steal", "ok", "steal 0.0% of CPU time; CPUs 20% busy over 0.5 s", "")


def meminfo(total_kib: int, available_kib: int, swap_used_kib: int = 0) -> str:
    return (f"MemTotal:       {total_kib} kB\nMemFree:        1000 kB\nMemAvailable:   {available_kib} kB\n"
            f"SwapTotal:      2000000 kB\nSwapFree:       {2000000 - swap_used_kib} kB\n")


def psi(avg10: float) -> str:
    return f"some avg10={avg10:.2f} avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"


def test_memory_is_warned_when_short_or_stalling(tmp_path):
    def memory(name: str, **files: str) -> Finding:
        return findings(tree(tmp_path / name, {f"proc/{path}": text for path, text in files.items()}))["memory"]

    short = memory("short", meminfo=meminfo(16_000_000, 800_000))
    assert short.status == "warn" and "0.8 of 15.3 GiB available (5%)" in short.seen and "close programs" in short.fix
    assert memory("ample", meminfo=meminfo(16_000_000, 12_000_000)).status == "ok"
    assert memory("stalling", meminfo=meminfo(16_000_000, 12_000_000), **{"pressure/memory": psi(3.5)}).status == "warn"
    swapped = {"meminfo": meminfo(16_000_000, 12_000_000, swap_used_kib=500_000)}
    assert memory("swap idle", **swapped, **{"pressure/memory": psi(0)}).status == "ok"
    assert memory("swap stalls", **swapped, **{"pressure/memory": psi(0.5)}).status == "warn"


def test_thermal_throttling_since_boot_is_warned_and_temperatures_are_shown(tmp_path):
    zone = "sys/class/thermal/thermal_zone"
    zones = {f"{zone}0/type": "x86_pkg_temp\n", f"{zone}0/temp": "52000\n",
             f"{zone}1/type": "acpitz\n", f"{zone}1/temp": "27800\n"}
    counts = {f"{CPU}/cpu{i}/thermal_throttle/core_throttle_count": f"{12 * (i == 0)}\n" for i in range(2)}
    counts |= {f"{CPU}/cpu{i}/thermal_throttle/package_throttle_count": "3\n" for i in range(2)}
    throttled = findings(tree(tmp_path / "hot", {**zones, **counts}))["thermal"]
    assert throttled.status == "warn" and throttled.seen.startswith("throttled since boot: up to 12 times on a core, 3")
    assert findings(tree(tmp_path / "cool", zones))["thermal"] == Finding(
        "thermal", "ok", "x86_pkg_temp 52 °C, acpitz 28 °C", "")


def test_isolated_cpus_are_offered_for_pinning(tmp_path):
    isolated = findings(tree(tmp_path / "a", {f"{CPU}/isolated": "2-3\n", f"{CPU}/nohz_full": "2-3\n"}))
    assert isolated["isolated cpus"] == Finding("isolated cpus", "info", "isolated: 2-3, nohz_full: 2-3",
                                                "pin the run to them: taskset -c 2-3 perfkit bench …")
    none = findings(tree(tmp_path / "b", {f"{CPU}/isolated": "\n", f"{CPU}/nohz_full": "(null)\n"}))["isolated cpus"]
    assert none.status == "info" and none.seen == "no isolated CPUs" and none.fix.startswith("isolcpus=")


def test_a_cpu_quota_below_the_physical_cores_is_warned_with_a_thread_count(tmp_path):
    v2 = findings(tree(tmp_path / "v2", {"proc/cpuinfo": cpuinfo(8), "sys/fs/cgroup/cpu.max": "200000 100000\n"}))
    assert v2["threads"].status == "warn" and v2["threads"].fix == "--threads 2"
    assert "8 threads" in v2["threads"].seen and "cgroup quota 2 CPUs" in v2["threads"].seen
    v1 = tree(tmp_path / "v1", {"proc/cpuinfo": cpuinfo(8), "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "150000\n",
                                "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"})
    assert findings(v1)["threads"].fix == "--threads 1"
    unlimited = tree(tmp_path / "max", {"proc/cpuinfo": cpuinfo(8), "sys/fs/cgroup/cpu.max": "max 100000\n"})
    assert findings(unlimited)["threads"].status == "ok"


def test_an_empty_tree_gives_every_check_unknown_without_an_error(tmp_path):
    found = machine_findings(sample_s=0, root=tmp_path)
    assert [f.check for f in found] == NAMES
    assert {f.check: f.status for f in found} == dict.fromkeys(NAMES, "unknown")
    assert all(f.seen and not f.fix for f in found)


def test_a_file_worded_otherwise_makes_its_check_unknown(tmp_path):
    root = tree(tmp_path, {"proc/loadavg": "n/a\n", "proc/cpuinfo": cpuinfo(2),
                           "proc/meminfo": meminfo(16_000_000, 12_000_000), "proc/pressure/memory": "some avg10=\n"})
    found = {f.check: f for f in machine_findings(sample_s=0, root=root)}
    assert found["load"].status == "unknown" and found["load"].seen.startswith("could not read it")
    assert found["memory"].status == "ok"  # a PSI line without a figure is left out, not fatal


def test_this_machine_is_checked_in_time_and_every_check_answers_once():
    start = time.perf_counter()
    found = machine_findings()
    assert time.perf_counter() - start < 2
    assert [f.check for f in found] == NAMES
    assert all(f.status in ("ok", "warn", "info", "unknown") and f.seen for f in found)
    assert all(bool(f.fix) == (f.status in ("warn", "info")) for f in found), found
    assert f"(pid {os.getpid()})" not in next(f.seen for f in found if f.check == "cpu users")
