"""Timing: the latency harness, the offline benchmarks and the live race generator.

    harness   `run_lane` (one batch through one lane, timed per stage), `Stopwatch`, `StepStreamer`,
              `StopOnEvent`, `LaneRun`, `time_alternating`, `summarize`, `synchronize`, `hardware_info`
    race      `race()`: the live race for the app, a generator of events (lanes timed in a worker in
              lockstep with the consumer, repeats in rotating order; `race_lanes`)
    bench     `bench_race`, `bench_encode`, `generator_agreement`, `race_inputs`, `physical_floor`
    report    `format_race_table`, `format_encode_table`, `lane_headline`

The command line (`python -m lame_tools bench race|encode`) lives in `lame_tools.cli.bench`.
Benchmarks print a table and write JSON; tests never assert on their timings.
"""

from lame_tools.timing.bench import bench_encode, bench_race, generator_agreement, physical_floor, race_inputs
from lame_tools.timing.harness import (
    LaneRun,
    StepStreamer,
    StopOnEvent,
    Stopwatch,
    hardware_info,
    run_lane,
    summarize,
    synchronize,
    time_alternating,
)
from lame_tools.timing.race import race, race_lanes, stop_ids
from lame_tools.timing.report import format_encode_table, format_race_table, lane_headline

__all__ = [
    "LaneRun",
    "StepStreamer",
    "StopOnEvent",
    "Stopwatch",
    "bench_encode",
    "bench_race",
    "format_encode_table",
    "format_race_table",
    "generator_agreement",
    "hardware_info",
    "lane_headline",
    "physical_floor",
    "race",
    "race_inputs",
    "race_lanes",
    "run_lane",
    "stop_ids",
    "summarize",
    "synchronize",
    "time_alternating",
]
