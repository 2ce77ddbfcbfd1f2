"""Local metrics: /proc parsers, served-job accounting, slots, power blending."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import limits, metrics
from p2pcc.core.metrics import (
    GIB,
    JobProgress,
    LocalMetrics,
    PowerEstimate,
    ServedLoad,
)
from p2pcc.core.procfs import ProcessEntry, parse_proc_stat, session_members

# Captured on this project's Debian 12 machine while distccd 3.4 (master 10056, worker
# 10058) compiled slow.c for a distcc client: the worker forked the gcc driver (comm
# truncated to 15 characters by the kernel), which forked cc1.
STAT_MASTER = (
    "10056 (distccd) S 9449 10056 10056 0 -1 4194560 371 0 0 0 0 0 0 0 25 5 1 0 436088 "
    "8785920 917 18446744073709551615 94599853223936 94599853304825 140722179148848 0 0 0 "
    "0 4 90115 1 0 0 17 0 0 0 0 0 0 94599853348528 94599853352948 94600766283776 "
    "140722179152497 140722179152615 140722179152615 140722179153895 0\n"
)
STAT_WORKER = (
    "10058 (distccd) S 10056 10056 10056 0 -1 4194368 83 0 0 0 0 0 0 0 25 5 1 0 436089 "
    "8785920 522 18446744073709551615 94599853223936 94599853304825 140722179148848 0 0 0 "
    "0 4100 90115 1 0 0 17 0 0 0 0 0 0 94599853348528 94599853352948 94600766283776 "
    "140722179152497 140722179152615 140722179152615 140722179153895 0\n"
)
STAT_DRIVER = (
    "10070 (x86_64-linux-gn) S 10058 10070 10056 0 -1 4194304 130 0 0 0 0 0 0 0 25 5 1 0 "
    "436194 4358144 635 18446744073709551615 4206592 4831625 140724080290384 0 0 0 0 4 "
    "20483 1 0 0 17 0 0 0 0 0 0 5477352 5493000 641089536 140724080298615 140724080298694 "
    "140724080298694 140724080299994 0\n"
)
STAT_CC1 = (
    "10071 (cc1) R 10070 10070 10056 0 -1 4194304 18119 0 0 0 66 4 0 0 25 5 1 0 436194 "
    "101130240 17455 18446744073709551615 6492160 27217685 140737228164736 0 0 0 0 4 1256 "
    "0 0 0 17 0 0 0 0 0 0 37477624 37538168 812146688 140737228167428 140737228167653 "
    "140737228167653 140737228169171 0\n"
)


MEMINFO = (
    "MemTotal:       24682416 kB\nMemFree:        23864032 kB\n"
    "MemAvailable:   24279916 kB\nBuffers:            4996 kB\n"
)


def entry(pid: int, ppid: int, comm: str, state: str = "S", cpu: int = 0) -> ProcessEntry:
    return ProcessEntry(pid, comm, state, ppid, cpu, start_ticks=1000 + pid)


# --- /proc parsers ---------------------------------------------------------------------


def test_parse_loadavg_takes_the_one_minute_figure() -> None:
    assert metrics.parse_loadavg("0.26 0.39 0.27 1/87 30241\n") == 0.26


@pytest.mark.parametrize("text", ["", "   \n", "abc 1 2", "-1.0 0 0 1/1 1", "nan 0 0 1/1 1"])
def test_parse_loadavg_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError is the contract
        metrics.parse_loadavg(text)


def test_parse_meminfo_returns_mem_available_in_bytes() -> None:
    assert metrics.parse_meminfo(MEMINFO) == 24279916 * 1024


def test_parse_meminfo_without_mem_available_is_an_error() -> None:
    with pytest.raises(ValueError, match="MemAvailable"):
        metrics.parse_meminfo("MemTotal:       24682416 kB\nMemFree:        23864032 kB\n")


def test_parse_proc_stat_reads_a_real_line() -> None:
    assert parse_proc_stat(STAT_CC1) == ProcessEntry(
        pid=10071,
        comm="cc1",
        state="R",
        ppid=10070,
        cpu_ticks=70,
        start_ticks=436194,
        session=10056,
    )
    assert parse_proc_stat(STAT_DRIVER).comm == "x86_64-linux-gn"


def test_parse_proc_stat_comm_may_hold_spaces_and_parentheses() -> None:
    line = STAT_CC1.replace("(cc1)", "(a) R 1 (b)")
    parsed = parse_proc_stat(line)
    assert (parsed.comm, parsed.state, parsed.ppid) == ("a) R 1 (b", "R", 10070)


def test_parse_proc_stat_counts_reaped_children_cpu() -> None:
    # utime 3, stime 4, cutime 50, cstime 6: a driver whose cc1 has been reaped.
    line = "7 (gcc) S 1 7 7 0 -1 0 0 0 0 0 3 4 50 6 20 0 1 0 99 0 0"
    assert parse_proc_stat(line).cpu_ticks == 63


@pytest.mark.parametrize("text", ["", "12 cc1 R 1", "12 (cc1) R 1 2 3", "x (cc1) R" + " 1" * 30])
def test_parse_proc_stat_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        parse_proc_stat(text)


# --- served jobs -----------------------------------------------------------------------


def real_tree() -> list[ProcessEntry]:
    return [parse_proc_stat(line) for line in (STAT_MASTER, STAT_WORKER, STAT_DRIVER, STAT_CC1)]


def test_a_real_distccd_tree_runs_one_job_the_gcc_driver() -> None:
    jobs = metrics.served_jobs(real_tree(), [10056])
    assert [job.pid for job in jobs] == [10070]


def test_only_children_of_the_given_distccd_count() -> None:
    processes = [
        *real_tree(),
        entry(3397, 1, "distccd"),  # somebody else's distccd ...
        entry(3404, 3397, "distccd"),
        entry(3500, 3404, "cc1plus"),  # ... and its job
        entry(20, 1, "bash"),
        entry(21, 20, "gcc"),  # the owner's own compile
    ]
    assert len(metrics.served_jobs(processes, [10056])) == 1
    assert len(metrics.served_jobs(processes, [10056, 3397])) == 2
    assert len(metrics.served_jobs(processes, [])) == 0
    assert len(metrics.served_jobs(processes, [999])) == 0  # gone since it was named


def test_zombies_and_forked_workers_are_not_jobs() -> None:
    processes = [
        entry(1, 0, "distccd"),
        entry(2, 1, "distccd"),
        entry(3, 2, "x86_64-linux-gn", state="Z"),  # finished, not yet reaped
        entry(4, 2, "distccd"),  # forked, about to exec the compiler
        entry(5, 4, "cc1plus"),  # a distccd grandchild below a distccd: still a job
    ]
    assert [job.pid for job in metrics.served_jobs(processes, [1])] == [5]


def test_job_cpu_sums_the_whole_live_subtree() -> None:
    processes = [
        entry(1, 0, "distccd"),
        entry(2, 1, "distccd"),
        entry(10, 2, "gcc", cpu=30),  # includes its reaped cc1
        entry(11, 10, "as", cpu=5),
        entry(12, 2, "g++", cpu=1),
        entry(13, 12, "cc1plus", cpu=400),
    ]
    assert metrics.job_cpu_ticks(processes, [1]) == {(10, 1010): 35, (12, 1012): 401}
    assert metrics.job_cpu_ticks(real_tree(), [10056]) == {(10070, 436194): 70}


def test_a_corrupt_snapshot_with_a_cycle_terminates() -> None:
    # Non-atomic /proc reads plus pid reuse can make a process its own ancestor.
    processes = [entry(1, 0, "distccd"), entry(10, 1, "gcc", cpu=3), entry(11, 11, "cc1", cpu=4)]
    processes.append(ProcessEntry(11, "cc1", "R", 10, 4, 1011))
    assert metrics.job_cpu_ticks(processes, [1]) == {(10, 1010): 7}


def test_expected_cpu_share_splits_cpus_between_everything_runnable() -> None:
    assert metrics.expected_cpu_share(cpus=8, foreign_load=2.0, jobs=4) == 1.0
    assert metrics.expected_cpu_share(cpus=2, foreign_load=1.0, jobs=3) == 0.5


def test_job_progress_uses_jobs_present_in_both_snapshots() -> None:
    before = {(10, 1): 100, (11, 5): 50}
    after = {(10, 1): 250, (12, 7): 5}  # 11 ended, 12 started: neither spans the interval
    progress = metrics.job_progress(before, after, 1.5, 100, expected_share=0.5)
    assert progress == JobProgress(measured_seconds=1.5, expected_seconds=3.0)


def test_job_progress_needs_enough_observed_time() -> None:
    assert metrics.job_progress({}, {(1, 1): 5}, 1.5, 100, 1.0) is None
    assert metrics.job_progress({(1, 1): 0}, {(1, 1): 5}, 0.4, 100, 1.0) is None
    # A counter going backwards (a pid-reuse artefact) is ignored, not negative work.
    assert metrics.job_progress({(1, 1): 9}, {(1, 1): 5}, 1.5, 100, 1.0) is None


# --- served load and slots --------------------------------------------------------------


def test_served_load_decays_with_the_kernel_time_constant() -> None:
    tracker = ServedLoad.start(4, now=100.0)
    assert tracker.advance(0, now=160.0) == ServedLoad(4 * math.exp(-1), 160.0)
    assert tracker.advance(4, now=130.0).average == pytest.approx(4.0)
    assert tracker.advance(2, now=90.0) == ServedLoad(4.0, 100.0)  # clock went back: no time


def test_a_node_that_just_finished_serving_does_not_look_busy() -> None:
    # Eight jobs served for ten minutes, then none for 30 s.  The kernel's load average
    # still holds most of them; subtracting the *current* job count (0) would report a
    # foreign load of 4.85 and withdraw the node.
    kernel_load, tracker = 0.0, ServedLoad.start(0, now=0.0)
    for step in range(1, 401):  # 600 s of serving, sampled every 1.5 s
        decay = math.exp(-1.5 / 60)
        kernel_load = kernel_load * decay + 8 * (1 - decay)
        tracker = tracker.advance(8, now=step * 1.5)
    for step in range(401, 421):  # 30 s idle
        kernel_load *= math.exp(-1.5 / 60)
        tracker = tracker.advance(0, now=step * 1.5)
    sample = metrics.compute(
        cpus=8,
        load_raw=kernel_load,
        served_load=tracker.average,
        mem_available=16 * GIB,
        jobs=0,
        job_memory=GIB,
    )
    assert kernel_load == pytest.approx(4.85, abs=0.01)
    assert sample.foreign_load == pytest.approx(0.0, abs=1e-9)
    assert sample.slots == 8


@pytest.mark.parametrize(
    ("cpus", "mem_gib", "foreign", "jobs", "slots"),
    [
        (8, 16, 0.0, 0, 8),
        (8, 16, 0.3, 0, 8),  # background noise costs no slot
        (8, 16, 0.5, 0, 8),  # 7.5 rounds half up
        (8, 16, 0.6, 0, 7),
        (8, 16, 7.6, 0, 0),
        (8, 16, 12.0, 0, 0),  # never negative
        (8, 2.5, 0.0, 0, 2),  # a job that does not fit in memory is not offered
        (8, 2, 0.0, 4, 6),  # running jobs hold memory already: 2 more fit
        (8, 0, 0.0, 0, 0),
    ],
)
def test_slots_offered(cpus: int, mem_gib: float, foreign: float, jobs: int, slots: int) -> None:
    assert metrics.slots_offered(cpus, int(mem_gib * GIB), GIB, foreign, jobs) == slots


def test_slots_are_capped_for_the_wire() -> None:
    assert metrics.slots_offered(4096, limits.MAX_MEMORY, GIB, 0.0) == limits.MAX_SLOTS


@given(
    cpus=st.integers(1, 4096),
    mem=st.integers(0, 2**44),
    job_memory=st.integers(1, 2**34),
    foreign=st.floats(0, 1e4),
    jobs=st.integers(0, 2000),
    more=st.floats(0, 100),
)
def test_slots_stay_in_bounds_and_fall_with_load(
    *, cpus: int, mem: int, job_memory: int, foreign: float, jobs: int, more: float
) -> None:
    slots = metrics.slots_offered(cpus, mem, job_memory, foreign, jobs)
    assert 0 <= slots <= min(cpus, limits.MAX_SLOTS)
    assert metrics.slots_offered(cpus, mem, job_memory, foreign + more, jobs) <= slots
    assert metrics.slots_offered(cpus, mem + job_memory, job_memory, foreign, jobs) >= slots


def test_compute_subtracts_served_load() -> None:
    assert metrics.compute(
        cpus=8,
        load_raw=5.0,
        served_load=3.5,
        mem_available=3 * GIB,
        jobs=4,
        job_memory=GIB,
    ) == LocalMetrics(
        cpus=8,
        load_raw=5.0,
        served_load=3.5,
        foreign_load=1.5,
        mem_available=3 * GIB,
        jobs=4,
        slots=7,  # min(round(8 - 1.5) = 7 (6.5 rounds up), 3 + 4 = 7)
    )
    undershoot = metrics.compute(
        cpus=2, load_raw=0.2, served_load=1.0, mem_available=GIB, jobs=1, job_memory=GIB
    )
    assert undershoot.foreign_load == 0.0


# --- a cgroup CPU limit -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpus", "limit", "foreign", "slots"),
    [
        (2, None, 0.0, 2),
        (2, 0.15, 0.0, 0),  # the test bed's slow workstation: under half a CPU, no slot
        (2, 0.5, 0.0, 1),  # half a CPU rounds up, as the foreign-load rule does
        (2, 0.6, 0.0, 1),
        (8, 1.5, 0.0, 2),
        (8, 2.4, 0.0, 2),
        (8, 2.0, 7.0, 1),  # the owner's load and the quota are separate caps
        (2, 8.0, 0.0, 2),  # a quota above the machine changes nothing
    ],
)
def test_a_cpu_limit_caps_the_cpu_slots(
    cpus: int, limit: float | None, foreign: float, slots: int
) -> None:
    assert metrics.slots_offered(cpus, 64 * GIB, GIB, foreign, cpu_limit=limit) == slots


@pytest.mark.parametrize(
    ("cpus", "limit", "jobs_cpus", "speed"),
    [
        (2, None, 2, 1.0),
        (2, 0.15, 1, 0.15),  # one slot's worth of CPUs, at 15 % of one
        (2, 0.6, 1, 0.6),
        (8, 1.5, 2, 0.75),  # two jobs share one and a half CPUs
        (8, 2.4, 3, 1.0),  # two slots, each a whole CPU; three jobs may run at once
        (2, 8.0, 2, 1.0),
    ],
)
def test_a_cpu_limit_narrows_cpus_and_slows_each_slot(
    cpus: int, limit: float | None, jobs_cpus: int, speed: float
) -> None:
    assert metrics.limited_cpus(cpus, limit) == jobs_cpus
    assert metrics.slot_speed(cpus, limit) == pytest.approx(speed)


def test_compute_reports_the_limit() -> None:
    sample = metrics.compute(
        cpus=2,
        load_raw=0.0,
        served_load=0.0,
        mem_available=16 * GIB,
        jobs=0,
        job_memory=GIB,
        cpu_limit=0.15,
    )
    assert (sample.cpus, sample.slots, sample.cpu_limit, sample.slot_speed) == (1, 0, 0.15, 0.15)


def test_served_jobs_are_promised_their_share_of_the_limit() -> None:
    # Two jobs in a 0.15-CPU cgroup each get 0.075 of a CPU: the correction must not
    # learn the quota a second time on top of the slot speed.
    assert metrics.expected_cpu_share(2, 0.0, 2, cpu_limit=0.15) == pytest.approx(0.075)
    assert metrics.expected_cpu_share(2, 3.0, 1, cpu_limit=4.0) == 0.5
    assert metrics.expected_cpu_share(2, 0.0, 0, cpu_limit=0.15) == 1.0


def test_limited_power_scales_by_the_slot_speed() -> None:
    assert metrics.limited_power(2.0, 0.15) == pytest.approx(0.3)
    assert metrics.limited_power(2.0, 1.0) == 2.0
    assert metrics.limited_power(2.0, 7.0) == 2.0  # a slot never beats its calibration
    assert metrics.limited_power(limits.MAX_POWER * 2, 1.0) == limits.MAX_POWER


@given(
    cpus=st.integers(1, 4096),
    limit=st.none() | st.floats(1e-6, 1e6),
    foreign=st.floats(0, 1e4),
)
def test_a_limit_never_offers_more_than_without_it(
    *, cpus: int, limit: float | None, foreign: float
) -> None:
    limited = metrics.slots_offered(cpus, 2**44, GIB, foreign, cpu_limit=limit)
    assert limited <= metrics.slots_offered(cpus, 2**44, GIB, foreign, 0)
    assert 1 <= metrics.limited_cpus(cpus, limit) <= cpus
    assert 0 < metrics.slot_speed(cpus, limit) <= 1


# --- power ------------------------------------------------------------------------------


def test_calibrated_power_is_reference_over_measured() -> None:
    assert metrics.calibrated_power(0.2, 0.1) == 2.0
    assert metrics.calibrated_power(0.2, 0.4) == 0.5
    assert metrics.calibrated_power(1.0, 1e-9) == limits.MAX_POWER
    with pytest.raises(ValueError, match="> 0"):
        metrics.calibrated_power(0.2, 0.0)


def test_node_power_is_the_median_over_compilers() -> None:
    assert metrics.node_power([4.0, 1.0, 2.0]) == 2.0
    assert metrics.node_power([1.0, 3.0]) == 2.0
    assert metrics.node_power([]) == metrics.NEUTRAL_POWER


def test_a_slow_observation_nudges_power_down_by_the_blend_weight() -> None:
    estimate = PowerEstimate(calibrated=2.0).observe(10.0, 5.0, now=50.0)
    assert estimate.samples == 1
    assert estimate.correction == pytest.approx(0.5**0.1)
    assert estimate.power(50.0) == pytest.approx(2.0 * 0.5**0.1)  # about 1.87


def test_one_pathological_job_moves_power_by_at_most_13_percent() -> None:
    estimate = PowerEstimate(calibrated=2.0).observe(1e6, 0.0, now=0.0)
    assert estimate.power(0.0) == pytest.approx(2.0 * 0.25**0.1)  # 1.74


def test_jobs_faster_than_the_load_model_predicts_do_not_raise_power() -> None:
    estimate = PowerEstimate(calibrated=2.0).observe(10.0, 50.0, now=0.0)
    assert estimate.power(0.0) == 2.0
    slow = PowerEstimate(calibrated=2.0).observe(10.0, 5.0, now=0.0)
    assert slow.observe(10.0, 50.0, now=0.0).correction == pytest.approx(0.5**0.09)


def test_the_correction_relaxes_toward_calibration_without_observations() -> None:
    estimate = PowerEstimate(calibrated=1.0, correction=0.25, samples=9, observed_at=100.0)
    assert estimate.power(100.0) == 0.25
    assert estimate.power(100.0 + metrics.CORRECTION_HALF_LIFE) == pytest.approx(0.5)
    assert estimate.power(1e9) == pytest.approx(1.0)


def test_observing_a_samples_progress() -> None:
    estimate = PowerEstimate(calibrated=2.0)
    assert estimate.observe_progress(None, now=5.0) is estimate
    progress = JobProgress(measured_seconds=10.0, expected_seconds=5.0)
    assert estimate.observe_progress(progress, now=5.0) == estimate.observe(10.0, 5.0, now=5.0)


def test_tiny_observations_are_ignored() -> None:
    estimate = PowerEstimate(calibrated=1.5)
    assert estimate.observe(0.1, 0.0, now=0.0) is estimate


def test_recalibration_keeps_what_was_learned() -> None:
    learned = PowerEstimate(calibrated=1.0).observe(10.0, 5.0, now=0.0)
    assert learned.recalibrated(3.0) == PowerEstimate(3.0, learned.correction, 1, 0.0)


@given(
    calibrated=st.floats(0.01, 100),
    observations=st.lists(
        st.tuples(st.floats(0, 1e6), st.floats(0, 1e6), st.floats(0, 1e5)), max_size=40
    ),
)
def test_power_stays_between_a_quarter_and_the_calibration(
    calibrated: float, observations: list[tuple[float, float, float]]
) -> None:
    estimate, now = PowerEstimate(calibrated), 0.0
    for measured, expected, step in observations:
        now += step
        estimate = estimate.observe(measured, expected, now)
        power = estimate.power(now)
        assert calibrated * metrics.MIN_CORRECTION * (1 - 1e-9) <= power <= calibrated * (1 + 1e-9)


def test_parse_proc_stat_keeps_the_session_not_the_group() -> None:
    line = "4242 (a) b (c)) S 1 4240 4239 0 -1 4194560 105 0 0 0 0 0 0 0 20 0 1 0 77 0 0\n"
    parsed = parse_proc_stat(line)  # process group 4240, session 4239
    assert (parsed.pid, parsed.comm, parsed.ppid, parsed.session) == (4242, "a) b (c)", 1, 4239)


def test_session_members_are_the_live_processes_of_the_session() -> None:
    processes = [
        ProcessEntry(100, "distccd", "S", 1, session=100),
        ProcessEntry(101, "distccd", "S", 100, session=100),
        ProcessEntry(110, "cc1plus", "R", 101, session=100),  # in a group of its own
        ProcessEntry(130, "cc1", "Z", 1, session=100),  # dead
        ProcessEntry(200, "bash", "S", 1, session=200),  # another session
    ]
    assert [entry.pid for entry in session_members(processes, 100)] == [100, 101, 110]
