"""The "Live cameras" section of bench/REPORT.md from what bench_cameras.py measured."""

from __future__ import annotations

import math
import statistics

from bench_cameras import (
    CPU_TARGET,
    FRACTIONS,
    KEEPS_UP_FPS,
    MEASURE_S,
    SUSTAIN_TARGET,
    TARGET_FPS,
    WARMUP_S,
    Limit,
    Sample,
)

RSS_TARGET_MB = 400.0

# What the profile of the agent found (2026-12-07, this 2-core box, shared with other jobs at a
# load average of 3 to 7): kept here so each run of the section says why its numbers are what
# they are.
FINDINGS = [
    "- What held the agent below the limit, with one detection worker per core (per-thread"
    " /proc schedstat over 15 s at 10 cameras = 0.72 × N_limit): each worker was on a CPU 67 % of"
    " the time, waited in the run queue 22 %, and was busy with frames 85 %; each camera reader"
    " used 1.5 % of a core. A worker steps its cameras one after the other, so they can have at"
    " most one core, less what the readers, the test server and other processes take from it,"
    " while the other core can be idle: frames dropped with the cores not full. The GIL was not"
    " the limit: held 27 % of the time at 12 cameras (py-spy --gil), 94 % of that by the workers'"
    " Python (tracker, rules, gate; `session.run` releases it). Since then the default is two"
    " workers per physical core (app/workers.py), so the scheduler can put any worker on a free"
    " core. Two vs one per core at 8 cameras, back to back: slowest camera 4.91 vs 4.33 fps, 0.5"
    " vs 4.7 frames dropped/s (2 more rounds at a load average of 6–13 from other jobs: 3.15 /"
    " 2.99 vs 3.08 / 1.58 fps); at 12, 3 interleaved rounds each: 4.33 / 4.24 / 3.71 vs 4.16 /"
    " 4.00 / 4.41 fps, 1.9 / 3.5 / 13.9 vs 6.9 / 6.9 / 5.4 dropped/s: better in 2 rounds of 3,"
    " lost in the box's noise in the third; RSS +20 MB (each concurrent `session.run` has its"
    " own buffers).",
    "- CPU per analysed frame: one thread running a camera's pipeline (gate, letterbox, model,"
    " output decode + NMS, tracker, presence rule) on every 2nd walkway frame took 26.8 ms of CPU"
    " per frame where the bare `session.run` took 23.1 ms (1.16×, 3 interleaved rounds, 25.9–27.9"
    " vs 22.3–23.8): letterbox and float conversion 0.8 ms, output decode + NMS 0.4 ms, tracker"
    " 1.5 ms, the rest the rules and the gate's thumbnail. The live agent adds the readers'"
    " Python and the threads' hand-offs. Worker processes with frames in shared memory would not"
    " lower this: `session.run` is 85 % of a frame's CPU and already runs outside the GIL.",
    "- How work is dealt (2026-12-07): cameras dealt to workers, by `detect.fps` and again every"
    " 10 s by the CPU each took, left the cameras that shared a worker with busier ones behind"
    " while another worker had time to spare (at 11 busy cameras on 4 workers, 3 / 3 / 3 / 2: the"
    " slowest camera 0.2–0.3 fps under the mean). The workers now share one queue of the cameras"
    " that have a frame (app/workers.py): whichever is free takes the camera that waited longest."
    " And a reader that kept one frame for the detector lost it when the worker came more than one"
    " period (200 ms) late, although the worker then caught up; readers now keep two"
    " (sources/rtsp.py). The detector's input tensor is also cast plane by plane (0.4 ms less per"
    " frame, the same numbers). Busy scene, back to back on this box with the box otherwise quiet,"
    " slowest camera fps (2 rounds each): at 11 cameras, before all three 4.65 / 4.44, with the"
    " two-frame queue and cameras dealt 5.00 / 4.75, with the shared queue 5.00 / 4.94; at 12,"
    " 4.45 / 4.49, 4.59 / 4.95 and 4.74 / 4.90.",
    "- CPU per analysed frame varies by a tenth between rows of one run (31–35 ms at 11 busy"
    " cameras in back-to-back rows, with the rest of the box idle): the machine's speed drifts"
    " under its hypervisor, so a row near the limit keeps up or not by that drift, and the limit,"
    " measured once before the sweep, drifts with it. Replay's shorter GIL switch interval (1 ms)"
    " did not help live cameras: at 10 busy cameras, 2 interleaved rounds each, slowest camera"
    " 4.35 / 4.50 fps against 4.87 / 4.68 fps at the default 5 ms. Since then each busy row is"
    " judged against the limit measured right before it.",
    "- Less Python per analysed frame (2026-12-07; thread CPU per analysed frame on walkway-a with"
    " its five rules, 3 runs each): the tracker 1.33 → 0.76 ms (uncontested IoU pairs settled"
    " before the assignment solver, which sees only the contested rest; a list solver for small"
    " matrices; the tracks' motion states kept in two arrays), the rules 0.92 → 0.37 ms (a frame's"
    " selections, zone tests and object references worked out once for all its rules; polygon"
    " edges made once), output decode 0.58 → 0.52 ms; every result bit for bit as before. At 12"
    " busy cameras (0.86–0.88 × N_limit), recording off, the agent then took 29.9 and 31.2 ms of"
    " CPU per analysed frame and kept up (slowest camera 4.95 and 4.84 fps). With one worker per"
    " core instead of two, in the same minutes: 4.90 and 4.55 fps: two per core stay the default.",
    "- Where the CPU goes with recording on (2026-12-07, thread CPU inside the agent at 12 busy"
    " cameras, 20 s): per analysed frame the model took 22.7 ms; the workers' own steps 3.6 ms"
    " (letterbox and motion gate 1.1, output decode + NMS 0.6, tracker, rules and events 1.1,"
    " cutting clips 0.8: 12 clips of about 5 MB, 80 ms of CPU each); the camera readers 3.9 ms,"
    " where a bare OpenCV read of the same stream costs 3.7; MQTT 0.2. Reading through PyAV"
    " costs what OpenCV's read does (demux + decode 1.78 vs 1.74 ms per packet, converting 0.45"
    " vs 0.44 ms per picture) plus 0.15 ms per packet written into the ring. py-spy had put 11 %"
    " of its samples in reading packets: that was the readers waiting on their sockets, which it"
    " counts as running.",
    "- A clip cut opened every segment of its window with a full probe of the stream, which"
    " decodes frames (about 10 ms a segment); now only the first segment is probed (the MP4's"
    " track template) and the others are opened without it, for the same bytes: a 21 s clip over"
    " 10 segments 95–110 → 62–73 ms of CPU. At 12 busy cameras with recording on, two vs four"
    " detection workers (2 rounds, interleaved): 31.3 / 31.8 vs 30.3 / 29.2 ms of agent CPU per"
    " analysed frame: two per core stay.",
    "- Headroom at the target: N_limit counts the whole machine for the cameras, so 0.85 × N_limit"
    " cameras leave the agent 1 / 0.85 = 1.18 × the limit's CPU per analysed frame, less what the"
    " test servers (3 % of the 200 %) and the rest of the box take. A recording-on row at 13"
    " cameras = 0.86 × N_limit that missed (slowest camera 4.69 fps, 29.3 ms per analysed frame ="
    " 1.12 × the limit's) had two stray test servers from an earlier measurement encoding beside"
    " it, 4 % of the box.",
    "- The test cameras no longer encode on the box under test (2026-12-07): a camera encodes in its"
    " own hardware, but the test server ran x264 live, 6–8 % of a core (0.78–0.85 s of CPU in 10 s,"
    " 3 rounds), out of the cores that N_limit counts for the cameras. The server now encodes the"
    " file once at its start, with the same x264 settings (the same profile and bitrate: 1.99 vs"
    " 1.97 Mbit/s), and loops the encoded pictures, only packing them into RTP: 0.09–0.13 s of CPU"
    " in 10 s. Decoding either stream costs the same: the limit on the live vs the looped stream,"
    " 3 interleaved rounds, 29.2 / 28.0 / 28.4 vs 27.6 / 30.4 / 28.0 ms per analysed frame. The"
    " limit is now also measured right after each busy row, and the row judged against the mean of"
    " before and after: over one row it moves by several percent (below).",
    "- Where the agent's CPU goes against the limit's (2026-12-07, `perf record` at 499 Hz over 15 s;"
    " the agent at 11 busy cameras with recording on, 34.4 ms per analysed frame, against the limit"
    " process, 29.6 ms), per analysed frame: onnxruntime 23.6 vs 24.1 ms, decoding (libavcodec) 2.9"
    " vs 3.2, the kernel 2.5 vs 0.4, libc (copies, malloc) 1.7 vs 1.0, the Python interpreter 1.5 vs"
    " 0.2, NumPy 0.8 vs 0, OpenCV 0.8 vs 0.2. The model and the decoding cost the agent what they"
    " cost the limit; the rest is the workers' Python (letterbox, gate, decode + NMS, tracker,"
    " rules: 2.2 ms on one thread alone, more among 16 threads) and the kernel's share of running"
    " 16 threads on 2 cores: per analysed frame the workers were switched out 17 times by the"
    " scheduler and slept 11 times (a worker made about 28 futex calls a frame under strace, most"
    " likely the GIL changing hands: every OpenCV call and large NumPy operation lets it go), the"
    " readers slept 21 times. Tried at 11"
    " busy cameras, interleaved, none lowering the agent's CPU per analysed frame beyond the"
    " box's drift: OpenCV's own thread pool off (32.4 / 32.5 vs 30.5 / 32.5 ms), a 20 ms GIL"
    " switch interval (32.2 / 34.9 / 35.3 vs 32.7 / 33.3 / 32.6), the workers as SCHED_BATCH"
    " threads (15 instead of 18 preemptions a frame, but 33.1 / 32.7 vs 31.7 / 31.4 ms), a reader"
    " resting 60 ms after a read that waited (no fewer wake-ups). Giving each busy camera its own"
    " moment of the clip (a server mount per camera, 16 phases) cost the test server 6–7 % of a"
    " core instead of 1 % and the agent 31.7 / 30.8 vs 29.8 / 29.8 ms: the cameras stay on one"
    " shared stream.",
    "- A clip's part is now demuxed as one stream over its segment files read back to back (one"
    " open per part instead of one per segment, 3–5 ms each even unprobed): a 21 s clip over 10"
    " segments 63–75 → 34–39 ms of CPU (3 interleaved rounds), the same bytes.",
    "- On a faster box (2026-12-07 evening: N_limit about 19, the limit 20.7 ms per analysed frame"
    " against 29.6 in the morning) the agent's own work weighs more. Per analysed frame at 12 busy"
    " cameras with recording on, thread CPU: the model 16.9 ms, the letterbox 0.75, the gate 0.38,"
    " the output's decode + NMS 0.62, the tracker 0.71, the rules 0.22, the worker pool 0.05; the"
    " readers 3.9 (per-thread /proc, the limit's decode part). The pipeline's own steps are 2.7 ms,"
    " 13 % of that limit: the 1.15 allowance leaves about 0.4 ms for everything else. Detection"
    " workers at 16 busy cameras (0.83 × N_limit), 2 interleaved rounds: 4 (the default) 23.3 /"
    " 25.5 ms per analysed frame = 1.12 / 1.25 × the limit beside the row, slowest camera 4.84 /"
    " 4.64 fps; 2 workers 23.3 / 24.3 ms = 1.13 / 1.22 ×, 4.84 / 4.64 fps; 3 workers 25.0 ms ="
    " 1.19 ×, 4.65 fps: no count better, and one setting moved by a tenth between rounds. The limit"
    " alone vs two limit processes at once (every core busy), 3 interleaved rounds: 20.2 / 21.5 /"
    " 20.6 vs 22.1 / 20.3 / 21.6 ms: no steady difference beyond the drift, so N_limit stays the"
    " one process's.",
    "- The agent's overhead over the limit is its pipeline's steps, not the threads (2026-12-07,"
    " the same faster box): at 12 busy cameras the agent took 24.1 ms of CPU per analysed frame"
    " against the limit's 21.4 (1.12 ×), with fewer minor page faults per frame (9.9 vs 35.6) and"
    " less system time (0.48 vs 0.59 ms) than the limit, but 30 context switches a frame against"
    " 3. One thread running one busy camera's steps took 2.1 ms per frame besides the model: the"
    " letterbox 0.55 (its resize 0.41), the output's decode + NMS 0.44 (reading the model's fresh"
    " 1.2 MB output costs 0.2 ms of it: the same decode of the same output again took 0.09 ms;"
    " binding a reused output buffer, onnxruntime's I/O binding, changed nothing), the tracker"
    " 0.52, the motion gate 0.30, the rules 0.18. With OpenCV's own pool on (the default before"
    " this run), the letterbox took 0.96 and the gate 0.40: the live agent now runs with it off, as"
    " replay did (at 15 busy cameras, 2 interleaved rounds: 1.09 / 1.11 × the limit with it off,"
    " 1.07 / 1.20 × with it on: no steady difference among 16 threads beyond the drift). Keeping up"
    " at 0.85 × N_limit takes 0.85 × the CPU ratio of the cores plus the test servers' 1–2 %: at"
    " 1.09 ×, 95 % of both cores, so the rows from 0.85 up fill the box whatever the agent spends"
    " beyond the limit.",
    "- Memory: the frames, tensors and clip buffers freed between two frames left free pages in"
    " glibc's heaps that it kept. The agent now hands them back every 5 s (`malloc_trim`,"
    " app/memory.py): at 16 busy cameras recording, 2 interleaved rounds, RSS 340 / 341 MB with it"
    " against 371 / 372 MB without, the CPU per analysed frame within the rounds' noise (24.7 /"
    " 23.9 vs 24.3 / 25.5 ms).",
]


def _best(samples: list[Sample]) -> Sample | None:
    """The row with the most cameras that kept up (the last of equals)."""
    ok = [s for s in samples if s.sustained]
    return max(ok, key=lambda s: s.cameras) if ok else None


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _limit_of(s: Sample, sweep: dict[int, Limit]) -> Limit | None:
    """The limit a row is judged against: the one measured around it, else its sweep's."""
    return s.limit if s.limit is not None else sweep.get(s.run)


def _cpu_ratio(s: Sample, sweep: dict[int, Limit]) -> float:
    """A row's CPU per analysed frame over its limit's (NaN when it has none)."""
    own = _limit_of(s, sweep)
    return s.cpu_ms_per_frame / own.cpu_ms_per_frame if own is not None else float("nan")


def _recording_pairs(samples: list[Sample], sweep: dict[int, Limit]) -> list[str]:
    """Recording on against off, row for row: the sweep measures the two settings side by side
    at each size (off, then on), so each pair ran within a minute of each other."""
    lines = []
    for run in dict.fromkeys(s.run for s in samples):
        busy = [s for s in samples if s.run == run and s.scene == "busy"]
        off = [s for s in busy if not s.recording]
        on = [s for s in busy if s.recording]
        if not off or len(off) != len(on):
            continue
        ratios = sorted(_cpu_ratio(b, sweep) / _cpu_ratio(a, sweep) for a, b in zip(off, on, strict=True))
        if not any(math.isnan(r) for r in ratios):
            lines.append(
                f"- Run {run}, busy rows side by side: recording on took {statistics.median(ratios):.2f}"
                f" ({ratios[0]:.2f}–{ratios[-1]:.2f}) × the CPU per analysed frame of recording off"
                f" (each against the limit measured around it), over {len(ratios)} pairs of rows."
            )
    return lines


def summary(samples: list[Sample], limits: list[Limit]) -> list[str]:
    lines = []
    for lim in limits:
        lines.append(
            f"- Limit, run {lim.run}: one camera's bare decode + `session.run` costs {lim.cpu_pct:.1f} % of"
            f" a core ({lim.cpu_ms_per_frame:.1f} ms CPU per analysed frame), so"
            f" **N_limit = {lim.cores} × 100 % / {lim.cpu_pct:.1f} % = {lim.cameras:.1f}** cameras."
        )
    sweep = {lim.run: lim for lim in limits}
    for lim in limits:
        busy = [s for s in samples if s.run == lim.run and s.scene == "busy"]
        if busy:
            ms = statistics.median(s.cpu_ms_per_frame for s in busy)
            # each row against the limit measured beside it, then the median of those ratios
            ratio = statistics.median(
                s.cpu_ms_per_frame / (_limit_of(s, sweep) or lim).cpu_ms_per_frame for s in busy
            )
            full_share = 1.0 / ratio  # of N_limit: the cores are full when the agent's CPU is
            lines.append(
                f"- Run {lim.run}: at the busy rows' median {ms:.1f} ms of agent CPU per analysed frame"
                f" (median {ratio:.2f} × the limit's beside each row), the cores are full at"
                f" {full_share:.2f} × N_limit, before the test servers' share."
            )
    beside = [s.limit.cameras for s in samples if s.limit is not None]
    if beside:
        moved = [abs(b[1] - b[0]) / b[0] for s in samples if s.limit and (b := s.limit.bracket)]
        lines.append(
            f"- The limit measured around each busy row (the mean of right before and right after it):"
            f" N_limit {min(beside):.1f}–{max(beside):.1f} (median {statistics.median(beside):.1f}) over"
            f" {len(beside)} rows; each busy row is judged against its own."
            + (
                f" Over one row (about {WARMUP_S + MEASURE_S:g} s), the limit moved by a median"
                f" {100 * statistics.median(moved):.0f} %, at most {100 * max(moved):.0f} %."
                if moved
                else ""
            )
        )
    lines += _recording_pairs(samples, sweep)
    for lim in limits:
        rows = [s for s in samples if s.run == lim.run]
        for scene in dict.fromkeys(s.scene for s in rows):
            for recording in dict.fromkeys(s.recording for s in rows):
                group = [s for s in rows if s.scene == scene and s.recording == recording]
                best = _best(group)
                what = f"run {lim.run}, {scene} scene, recording {'on' if recording else 'off'}"
                if best is None:
                    lines.append(f"- {what}: no count kept up.")
                    continue
                own = _limit_of(best, sweep) or lim
                share = best.cameras / own.cameras
                cpu = best.cpu_ms_per_frame / own.cpu_ms_per_frame
                against = (
                    f"the N_limit of {own.cameras:.1f} measured around it"
                    f" ({best.cameras / lim.cameras:.2f} × the sweep's {lim.cameras:.1f})"
                    if best.limit is not None
                    else "N_limit"
                )
                text = (
                    f"- {what}: most cameras kept up **{best.cameras}** = {share:.2f} × {against};"
                    f" there, agent CPU {best.cpu_ms_per_frame:.1f} ms per analysed frame ="
                    f" {cpu:.3f} × the limit's, RSS {best.rss_mb:.0f} MB"
                )
                if scene == "busy":
                    text += (
                        f" (targets ≥ {SUSTAIN_TARGET:g} × N_limit: {_verdict(share >= SUSTAIN_TARGET)};"
                        f" ≤ {CPU_TARGET:g} ×: {_verdict(cpu <= CPU_TARGET)};"
                        f" ≤ {RSS_TARGET_MB:.0f} MB: {_verdict(best.rss_mb <= RSS_TARGET_MB)})"
                    )
                lines.append(text + ".")
    return lines


def report(
    samples: list[Sample],
    limits: list[Limit],
    lat: list[float],
    points: list[tuple[float, float]],
    soak_s: float,
    load: list[tuple[float, float, float]],
) -> str:
    sweep = {lim.run: lim for lim in limits}
    lines = [
        "## Live cameras",
        "",
        f"`edge-agent run` with N cameras reading looped RTSP streams from the GStreamer test server,"
        f" `detect.fps: {TARGET_FPS:g}`, motion gate on (the default), YOLOX-Nano with the default model"
        " settings; scene `busy`: every camera reads the walkway clip (768x576, 10 fps, people all the"
        " time); `mixed`: every 4th camera reads the walkway, the other 3 of 4 the still street of"
        " the motion-gate section (640x480, 10 fps), from a second server. Before each sweep, the"
        " limit (bench/camera_limit.py): one process decodes the walkway stream, converts the frames"
        f" due at {TARGET_FPS:g} fps and runs a bare `session.run` on each, nothing else; its CPU is"
        " one camera's bare cost and N_limit = cores × 100 % / that. The machine's speed drifts by a"
        " tenth within minutes, so the limit is measured again right before and right after every busy"
        " row: the row's"
        f" camera count is its fraction ({', '.join(f'{f:g}' for f in FRACTIONS)}) of the N_limit"
        " before it, rounded up, and the row is judged against the mean of the two (its N_limit, the"
        " `/ N_limit` of busy rows and their CPU ratio). The"
        " mixed rows' counts are fractions of the first run's N_limit. Rows are listed in the order"
        " they ran: recording off and on alternate at each size (off first), so the machine's drift"
        " falls on both settings alike."
        f" {MEASURE_S:g} s measured after {WARMUP_S:g} s warm-up per row. The test"
        " servers (one stream each, shared by all cameras, encoded once at their start and looped, as"
        " a camera that encodes in its own hardware: they only pack pictures into RTP) run on the"
        " same cores; their"
        " CPU is reported apart, and so is the rest of the box's (/proc/stat: the jobs of other"
        " people on a shared machine, and time the hypervisor gave elsewhere). Keeps up: every"
        f" camera analyses ≥ {KEEPS_UP_FPS:g} of the"
        f" {TARGET_FPS:g} frames/s asked. CPU ms per analysed frame: the agent's CPU time over the"
        " frames all its cameras analysed (with the gate, some of them skip the detector). Load"
        " average (1/5/15 min) before and after each sweep: "
        + "; ".join(f"{a:.2f} {b:.2f} {c:.2f}" for a, b, c in load)
        + ".",
        "",
        "| run | scene | recording | cameras | N_limit | / N_limit | slowest camera fps | mean fps"
        " | agent CPU % (of one core) | CPU ms per analysed frame | agent RSS MB | of it, mapped files MB"
        " | / the limit's CPU per frame | RTSP servers CPU % | other processes + steal CPU %"
        " | frames dropped/s | keeps up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in samples:
        own = _limit_of(s, sweep)
        n_lim = own.cameras if own is not None else float("nan")
        cpu_ratio = _cpu_ratio(s, sweep)
        lines.append(
            f"| {s.run} | {s.scene} | {'on' if s.recording else 'off'} | {s.cameras} | {n_lim:.1f}"
            f" | {s.cameras / n_lim:.2f} | {s.min_fps:.2f} | {s.mean_fps:.2f} | {s.cpu_pct:.0f}"
            f" | {s.cpu_ms_per_frame:.1f} | {s.rss_mb:.0f} | {s.rss_file_mb:.0f} | {cpu_ratio:.2f}"
            f" | {s.server_cpu_pct:.0f} | {s.others_cpu_pct:.0f}"
            f" | {s.dropped_per_s:.1f}"
            f" | {'yes' if s.sustained else 'no'} |"
        )
    lines += ["", *summary(samples, limits)]
    busy = sorted((s for s in samples if s.scene == "busy" and not s.recording), key=lambda s: s.cameras)
    if len(busy) >= 2 and busy[-1].cameras > busy[0].cameras:
        lo = [s.rss_mb for s in busy if s.cameras == busy[0].cameras]
        hi = [s.rss_mb for s in busy if s.cameras == busy[-1].cameras]
        per_cam = (statistics.mean(hi) - statistics.mean(lo)) / (busy[-1].cameras - busy[0].cameras)
        span = f"{busy[0].cameras} to {busy[-1].cameras} cameras"
        lines.append(f"- RSS grows {per_cam:.1f} MB per camera ({span}).")
    lines += FINDINGS
    lines.append(
        "- RSS counts the pages of the shared libraries (OpenCV, onnxruntime, FFmpeg) the process has"
        " mapped from files; how many of them are resident depends on the page cache, not on the agent:"
        " the same build at one camera measured 223 MB right after `make setup` and 168 MB an hour"
        " later on the same box, with the same heap and anonymous memory (OpenCV's library alone went"
        " from 39 to 11 MB resident). Compare the rows of one run."
    )
    if lat:
        lines.append(
            f"- Frame-to-event latency (line crossings, one camera, {len(lat)} events): "
            f"median {statistics.median(lat):.0f} ms, max {max(lat):.0f} ms."
        )
    if len(points) >= 2:
        first, last = points[0], points[-1]
        peak = max(p[1] for p in points)
        lines.append(
            f"- RSS over a {soak_s / 60:.0f}-minute run at 4 cameras: "
            f"{first[1]:.0f} MB after {first[0]:.0f} s, "
            f"{last[1]:.0f} MB at the end, peak {peak:.0f} MB (growth {last[1] - first[1]:+.0f} MB)."
        )
    lines.append("")
    return "\n".join(lines)
