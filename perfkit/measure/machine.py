"""The machine checks behind `perfkit doctor`: is this machine fit to benchmark on, each finding with its fix.

Like `pyperf system show`. Everything is read from /proc and /sys under `root`, so a test can point the checks at
a fake tree; a file that is missing, unreadable or worded differently makes its check "unknown", never an error.
Two checks (steal, the other programs using CPU) compare counters read twice: `take_snapshot` reads them once, and
those checks take a `Sample` of two snapshots, so a test can hand both over directly.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

LOAD_PER_CPU = 0.5  # above half a runnable task per CPU, other programs get time slices often enough to show
BUSY_PROCESS_SHARE = 0.10  # another program above 10 % of a core takes slices and cache from the model
TOP_PROCESSES = 3  # enough to name the culprits on one line
STEAL_SHARE = 0.02  # a neighbour VM taking over 2 % of this CPU moves the tail of the latencies
AVAILABLE_SHARE = 0.10  # under 10 % of memory available, page cache is evicted and allocations stall
MEMORY_PRESSURE = 1.0  # PSI "some avg10" above 1 %: tasks stalled on memory in the last 10 s
HOTTEST_ZONES = 3  # a laptop lists a dozen thermal zones; the hottest few say enough
# /proc's CPU times are in clock ticks; 100 a second where sysconf cannot say (it can on every Linux)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
CPU_DIR = "sys/devices/system/cpu"
SIBLINGS = "cpu[0-9]*/topology/thread_siblings_list"  # one file per logical CPU, naming the CPUs of its core
USER, NICE, SYSTEM, IDLE, IOWAIT, IRQ, SOFTIRQ, STEAL = range(8)  # the columns of /proc/stat's "cpu" line


@dataclass(frozen=True)
class Finding:
    """One check of the machine: what was seen, and what to do about it."""

    check: str  # short name: "governor", "boost", "smt", "load", "cpu users", "steal", "memory", "thermal", …
    status: str  # "ok" | "warn" | "info" | "unknown" (unknown: not readable here, e.g. no cpufreq in a VM)
    seen: str  # what was seen, one short line with figures
    fix: str  # what to do about it; "" when status is ok


@dataclass(frozen=True)
class Snapshot:
    """One reading of the CPU counters: /proc/stat's aggregate "cpu" line and each process's CPU time."""

    cpu: tuple[int, ...]  # user nice system idle iowait irq softirq steal …, in clock ticks; () when unreadable
    process_ticks: Mapping[int, int]  # pid -> utime + stime, in clock ticks
    taken: float  # time.perf_counter() when read


@dataclass(frozen=True)
class Sample:
    """Two snapshots, one interval apart: what the steal and cpu-users checks compare."""

    before: Snapshot
    after: Snapshot

    @property
    def seconds(self) -> float:
        return self.after.taken - self.before.taken


Check = Callable[[Path, Sample], Finding]


def machine_findings(sample_s: float = 0.5, root: Path = Path("/")) -> list[Finding]:
    """Every check in CHECKS once, in its order; the CPU counters are read twice, `sample_s` apart."""
    before = take_snapshot(root)
    time.sleep(sample_s)
    sample = Sample(before, take_snapshot(root))
    return [_run_check(name, check, root, sample) for name, check in CHECKS.items()]


def _run_check(name: str, check: Check, root: Path, sample: Sample) -> Finding:
    try:
        return check(root, sample)
    except (OSError, ValueError, IndexError, KeyError, ZeroDivisionError) as error:
        # a kernel or container that words a file differently costs one check, not the whole doctor
        return Finding(name, "unknown", f"could not read it: {error}", "")


def take_snapshot(root: Path) -> Snapshot:
    first_line = (_read(root / "proc/stat") or "").partition("\n")[0].split()
    is_cpu_line = first_line[:1] == ["cpu"] and all(field.isdigit() for field in first_line[1:])
    cpu = tuple(int(field) for field in first_line[1:]) if is_cpu_line else ()
    return Snapshot(cpu, _process_ticks(root), time.perf_counter())


def _process_ticks(root: Path) -> dict[int, int]:
    try:
        pids = [name for name in os.listdir(root / "proc") if name.isdigit()]
    except OSError:
        return {}
    ticks = {}
    for pid in pids:
        # the name in parentheses may hold spaces and ")", so the fields are counted from the last ")"
        fields = (_read(root / f"proc/{pid}/stat") or "").rpartition(")")[2].split()[11:13]  # utime, stime
        if len(fields) == 2 and all(field.isdigit() for field in fields):
            ticks[int(pid)] = int(fields[0]) + int(fields[1])
    return ticks


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _per_cpu(root: Path, pattern: str) -> list[str]:
    """The stripped text of each file matching `pattern` under /sys/devices/system/cpu."""
    return [text.strip() for path in sorted((root / CPU_DIR).glob(pattern)) if (text := _read(path)) is not None]


def governor(root: Path, _sample: Sample) -> Finding:
    governors = _per_cpu(root, "cpu[0-9]*/cpufreq/scaling_governor")
    if not governors:
        return Finding("governor", "unknown", "no cpufreq scaling_governor (a VM or container hides it)", "")
    others = [name for name in governors if name != "performance"]
    if not others:
        return Finding("governor", "ok", f"performance on all {len(governors)} CPUs", "")
    counts = ", ".join(f"{name} on {others.count(name)}" for name in sorted(set(others)))
    return Finding("governor", "warn", f"governor {counts} of {len(governors)} CPUs: the clock follows the load",
                   "sudo cpupower frequency-set -g performance (or: python -m pyperf system tune)")


def boost(root: Path, _sample: Sample) -> Finding:
    boost_path, no_turbo_path = f"{CPU_DIR}/cpufreq/boost", f"{CPU_DIR}/intel_pstate/no_turbo"
    boost_flag, no_turbo = _read(root / boost_path), _read(root / no_turbo_path)
    if no_turbo is not None:
        on, fix = no_turbo.strip() == "0", f"echo 1 | sudo tee /{no_turbo_path}"
    elif boost_flag is not None:
        on, fix = boost_flag.strip() == "1", f"echo 0 | sudo tee /{boost_path}"
    else:
        return Finding("boost", "unknown", "no cpufreq/boost or intel_pstate/no_turbo (a VM hides them)", "")
    if on:
        return Finding("boost", "warn", "turbo boost on: the clock varies with temperature and the other cores' load",
                       f"{fix} (or: python -m pyperf system tune)")
    return Finding("boost", "ok", "turbo boost off", "")


def smt(root: Path, _sample: Sample) -> Finding:
    active = (_read(root / f"{CPU_DIR}/smt/active") or "").strip()
    siblings = _per_cpu(root, SIBLINGS)
    if not siblings:
        return Finding("smt", "unknown", "no thread_siblings_list readable here", "")
    shared = active == "1" if active else any("," in cpus or "-" in cpus for cpus in siblings)
    if not shared:
        return Finding("smt", "ok", "SMT off: one thread per core", "")
    first_of_each_core = {int(re.split("[,-]", cpus)[0]) for cpus in siblings}
    cores = len(first_of_each_core)
    return Finding("smt", "info", f"SMT on: {len(siblings)} logical CPUs on {cores} cores, siblings share a core",
                   f"--threads {cores} or fewer, or taskset -c {_cpu_list(first_of_each_core)} (one CPU per core)")


def load(root: Path, _sample: Sample) -> Finding:
    text, cpus = _read(root / "proc/loadavg"), _usable_cpus(root)
    if not text or not cpus:
        return Finding("load", "unknown", "/proc/loadavg or the CPU count not readable", "")
    one_minute = float(text.split()[0])
    seen = f"1-minute load {one_minute:.2f} on {cpus} CPUs ({one_minute / cpus:.2f} per CPU)"
    if one_minute / cpus > LOAD_PER_CPU:
        return Finding("load", "warn", seen, f"close other programs (or wait for a load under {LOAD_PER_CPU * cpus:g})")
    return Finding("load", "ok", seen, "")


def cpu_users(root: Path, sample: Sample) -> Finding:
    shares = _cpu_shares(root, sample)
    if shares is None:
        return Finding("cpu users", "unknown", "no /proc/[pid]/stat readable twice", "")
    busiest = sorted(((share, pid) for pid, share in shares.items() if share > 0), reverse=True)[:TOP_PROCESSES]
    named = ", ".join(f"{_process_name(root, pid)} (pid {pid}) {share:.0%}" for share, pid in busiest)
    if busiest and busiest[0][0] > BUSY_PROCESS_SHARE:
        return Finding("cpu users", "warn", f"{named} of a core over {sample.seconds:.1f} s",
                       "stop them while you measure (or pause one: kill -STOP PID, later kill -CONT PID)")
    return Finding("cpu users", "ok", f"no other program above {BUSY_PROCESS_SHARE:.0%} of a core"
                   + (f" (busiest: {named})" if named else ""), "")


def _cpu_shares(root: Path, sample: Sample) -> dict[int, float] | None:
    """Each other process's CPU time over the sample, as a share of one core; None when nothing was read."""
    before, after = sample.before.process_ticks, sample.after.process_ticks
    if not before or not after or sample.seconds <= 0:
        return None
    own = _own_pid(root)
    # a process seen only once is left out: its ticks before the interval are not known
    return {pid: (after[pid] - ticks) / CLOCK_TICKS / sample.seconds
            for pid, ticks in before.items() if pid in after and pid != own}


def _own_pid(root: Path) -> int | None:
    """This process's pid as the /proc under `root` numbers it (a container's /proc has its own numbers)."""
    try:
        return int(os.readlink(root / "proc/self"))
    except (OSError, ValueError):
        return None


def _process_name(root: Path, pid: int) -> str:
    return (_read(root / f"proc/{pid}/comm") or "?").strip()


def steal(_root: Path, sample: Sample) -> Finding:
    before, after = sample.before.cpu, sample.after.cpu
    if len(before) <= STEAL or len(after) <= STEAL:
        return Finding("steal", "unknown", "/proc/stat has no steal column here", "")
    ticks = [late - early for early, late in zip(before[: STEAL + 1], after[: STEAL + 1], strict=True)]
    total = sum(ticks)
    if total <= 0:
        return Finding("steal", "unknown", "/proc/stat did not move over the sample", "")
    stolen = ticks[STEAL] / total
    busy = sum(ticks[column] for column in (USER, NICE, SYSTEM, IRQ, SOFTIRQ)) / total
    seen = f"steal {stolen:.1%} of CPU time; CPUs {busy:.0%} busy over {sample.seconds:.1f} s"
    if stolen > STEAL_SHARE:
        return Finding("steal", "warn", seen + ": a neighbour VM takes this CPU",
                       "use a dedicated or bare-metal runner, or measure again later")
    return Finding("steal", "ok", seen, "")


def memory(root: Path, _sample: Sample) -> Finding:
    meminfo = _read(root / "proc/meminfo") or ""
    sizes = {key: int(kib) for key, kib in re.findall(r"^(\w+):\s+(\d+)", meminfo, re.MULTILINE)}
    total, available = sizes.get("MemTotal"), sizes.get("MemAvailable")
    if not total or available is None:
        return Finding("memory", "unknown", "/proc/meminfo has no MemTotal or MemAvailable", "")
    swapped = sizes.get("SwapTotal", 0) - sizes.get("SwapFree", 0)
    pressure = _memory_pressure(root)
    seen = (f"{available / 2**20:.1f} of {total / 2**20:.1f} GiB available ({available / total:.0%}), "
            f"{swapped / 2**20:.1f} GiB swap in use" + ("" if pressure is None else f", PSI some avg10 {pressure}"))
    short = available / total < AVAILABLE_SHARE
    stalling = pressure is not None and (pressure > MEMORY_PRESSURE or (swapped > 0 and pressure > 0))
    if short or stalling:
        return Finding("memory", "warn", seen, "close programs that hold memory, so the model's pages stay in RAM")
    return Finding("memory", "ok", seen, "")


def _memory_pressure(root: Path) -> float | None:
    """PSI's "some avg10": the share of the last 10 s in which some task waited for memory, in %."""
    some = re.search(r"^some .*\bavg10=([0-9.]+)", _read(root / "proc/pressure/memory") or "", re.MULTILINE)
    return float(some[1]) if some else None


def thermal(root: Path, _sample: Sample) -> Finding:
    core, package = _most_throttles(root, "core_throttle_count"), _most_throttles(root, "package_throttle_count")
    zones = _zone_temperatures(root)
    hottest = sorted(zones.items(), key=lambda zone: zone[1], reverse=True)[:HOTTEST_ZONES]
    temperatures = ", ".join(f"{kind} {celsius:.0f} °C" for kind, celsius in hottest)
    if core is None and package is None and not zones:
        return Finding("thermal", "unknown", "no throttle counters or thermal zones readable here", "")
    if core or package:
        return Finding("thermal", "warn", f"throttled since boot: up to {core or 0} times on a core, "
                       f"{package or 0} on a package" + (f"; {temperatures}" if temperatures else ""),
                       "improve the cooling or turn boost off (the counts are since boot: see whether a run adds)")
    return Finding("thermal", "ok", temperatures or "no throttling since boot", "")


def _most_throttles(root: Path, name: str) -> int | None:
    # each CPU of a core (or package) repeats that core's (package's) count, so the most is the count
    counts = [int(text) for text in _per_cpu(root, f"cpu[0-9]*/thermal_throttle/{name}") if text.isdigit()]
    return max(counts, default=None)


def _zone_temperatures(root: Path) -> dict[str, float]:
    """The hottest reading of each type of thermal zone, in °C."""
    zones: dict[str, float] = {}
    for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        millidegrees = (_read(zone / "temp") or "").strip()
        if millidegrees.lstrip("-").isdigit():
            kind = (_read(zone / "type") or zone.name).strip()
            zones[kind] = max(zones.get(kind, -273.0), int(millidegrees) / 1000)
    return zones


def isolated_cpus(root: Path, _sample: Sample) -> Finding:
    listed = _read(root / f"{CPU_DIR}/isolated")
    if listed is None:
        return Finding("isolated cpus", "unknown", f"/{CPU_DIR}/isolated not readable", "")
    cpus, nohz = listed.strip(), (_read(root / f"{CPU_DIR}/nohz_full") or "").strip().replace("(null)", "")
    if cpus:
        return Finding("isolated cpus", "info", f"isolated: {cpus}" + (f", nohz_full: {nohz}" if nohz else ""),
                       f"pin the run to them: taskset -c {cpus} perfkit bench …")
    return Finding("isolated cpus", "info", "no isolated CPUs", "isolcpus=LIST nohz_full=LIST on the kernel command "
                   "line keep other work off the CPUs you measure on")


def threads(root: Path, _sample: Sample) -> Finding:
    usable, physical = _usable_cpus(root), _physical_cores(root)
    if not usable or not physical:
        return Finding("threads", "unknown", "the usable CPUs or the physical cores not readable here", "")
    quota = _cgroup_cpu_quota(root)
    limit = usable if quota is None else min(usable, max(1, int(quota)))
    seen = (f"onnxruntime's default pool: {physical} threads (its physical cores); this process may use {limit} "
            "CPUs" + ("" if quota is None else f" (cgroup quota {quota:g} CPUs)"))
    if physical > limit:
        return Finding("threads", "warn", seen + ": the default pool oversubscribes them", f"--threads {limit}")
    return Finding("threads", "ok", seen, "")


def _usable_cpus(root: Path) -> int | None:
    """The CPUs this process may run on: its affinity on this machine; /proc/cpuinfo's count under a fake root."""
    if root == Path("/") and hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return len(re.findall(r"^processor\s*:", _read(root / "proc/cpuinfo") or "", re.MULTILINE)) or None


def _physical_cores(root: Path) -> int | None:
    # each processor's block names its package ("physical id") before its core ("core id")
    pattern = r"^physical id\s*:\s*(\d+)$.*?^core id\s*:\s*(\d+)$"
    cores = set(re.findall(pattern, _read(root / "proc/cpuinfo") or "", re.MULTILINE | re.DOTALL))
    # ARM's cpuinfo has no core ids: one set of thread siblings is one core
    return len(cores) or len(set(_per_cpu(root, SIBLINGS))) or None


def _cgroup_cpu_quota(root: Path) -> float | None:
    """The CPU quota of the cgroup a container sees as its own (v2 cpu.max, or v1's cfs pair), in CPUs."""
    v1_files = ("cpu.cfs_quota_us", "cpu.cfs_period_us")
    v1 = _quota(" ".join((_read(root / "sys/fs/cgroup/cpu" / name) or "").strip() for name in v1_files))
    v2 = _quota(_read(root / "sys/fs/cgroup/cpu.max"))
    return min((quota for quota in (v2, v1) if quota), default=None)


def _quota(text: str | None) -> float | None:
    """'200000 100000' -> 2.0 CPUs; 'max 100000' (v2) or '-1 100000' (v1) is no limit: None."""
    fields = (text or "").split()
    if len(fields) != 2 or not all(field.isdigit() for field in fields) or int(fields[1]) == 0:
        return None
    return int(fields[0]) / int(fields[1])


def _cpu_list(cpus: set[int]) -> str:
    """{0, 1, 2, 3, 8} -> '0-3,8', the kernel's and taskset's CPU list format."""
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and runs[-1][1] == cpu - 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)


CHECKS: dict[str, Check] = {
    "governor": governor, "boost": boost, "smt": smt, "load": load, "cpu users": cpu_users, "steal": steal,
    "memory": memory, "thermal": thermal, "isolated cpus": isolated_cpus, "threads": threads,
}
