/**
 * Running a command and measuring it: wall time, peak RSS, CPU time.
 *
 * Peak RSS and CPU come from GNU time (`/usr/bin/time -f '%M %U %S'`, Debian package `time`), which
 * reports the child's own getrusage: the whole process with all its threads (logwasm's worker
 * threads are in-process). Without GNU time, VmHWM (the kernel's peak-RSS mark) and utime+stime
 * are sampled from /proc/<pid> every 50 ms; the last sample before exit stands, so the tail of a run
 * may be missed.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export const GNU_TIME = '/usr/bin/time';
/** Kernel clock ticks per second for /proc/<pid>/stat (getconf CLK_TCK; 100 on Linux). */
export const CLOCK_TICKS = 100;
const SAMPLE_MS = 50;

export function hasGnuTime() {
  return existsSync(GNU_TIME);
}

/** utime + stime of `pid` in seconds, or undefined once it is gone. */
export function cpuSecondsOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; fields after it are split from its ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** A `/proc/<pid>/status` field in KiB (VmRSS, VmHWM), or undefined once it is gone. */
export function statusKiB(pid, field) {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

/**
 * Runs `command args` to its end. Returns `{ code, signal, stdout, stderr, wallSeconds, maxRssKiB,
 * cpuSeconds, rssMethod }`. `options`: `cwd`, `env`, `tmpDir` (for GNU time's report),
 * `onSample(rssKiB, elapsedSeconds)` called every 50 ms with the current VmRSS (needs no GNU time
 * for the numbers it reports, since it reads the process itself), `stallSeconds`: when the process
 * uses no CPU for that long it is sent SIGTERM (then SIGKILL after as long again) and the result
 * has `stalled: true`, so a hung run ends the case instead of the whole suite.
 */
export function runMeasured(command, args, options = {}) {
  const useTime = hasGnuTime() && options.tmpDir !== undefined;
  const report = useTime ? join(options.tmpDir, `time-${process.pid}-${Date.now()}.txt`) : undefined;
  const argv = useTime ? ['-f', '%M %U %S', '-o', report, command, ...args] : args;
  const started = performance.now();
  const child = spawn(useTime ? GNU_TIME : command, argv, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout = [];
  const stderr = [];
  child.stdout.on('data', (chunk) => stdout.push(chunk));
  child.stderr.on('data', (chunk) => stderr.push(chunk));
  let hwm;
  let cpu;
  let stalled = false;
  let progressAt = performance.now();
  const sample = () => {
    // Under GNU time the measured process is time's only child.
    const pid = useTime ? childPid(child.pid) : child.pid;
    if (pid === undefined) return;
    hwm = statusKiB(pid, 'VmHWM') ?? hwm;
    const now = cpuSecondsOf(pid);
    if (now !== undefined && now !== cpu) progressAt = performance.now();
    cpu = now ?? cpu;
    const idleSeconds = (performance.now() - progressAt) / 1000;
    if (options.stallSeconds !== undefined && idleSeconds > options.stallSeconds) {
      if (!stalled) process.kill(pid, 'SIGTERM');
      else if (idleSeconds > 2 * options.stallSeconds) process.kill(pid, 'SIGKILL');
      stalled = true;
    }
    if (options.onSample !== undefined) {
      const rss = statusKiB(pid, 'VmRSS');
      if (rss !== undefined) options.onSample(rss, (performance.now() - started) / 1000);
    }
  };
  const timer = setInterval(sample, SAMPLE_MS);
  return new Promise((resolve, reject) => {
    child.on('error', (error) => {
      clearInterval(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearInterval(timer);
      const wallSeconds = (performance.now() - started) / 1000;
      let maxRssKiB = hwm;
      let cpuSeconds = cpu;
      let rssMethod = 'sampled VmHWM';
      if (useTime) {
        try {
          const [rss, user, sys] = readFileSync(report, 'utf8').trim().split('\n').pop().split(' ').map(Number);
          maxRssKiB = rss;
          cpuSeconds = user + sys;
          rssMethod = 'GNU time %M';
        } catch {
          // The command did not start (or time failed): keep the samples.
        }
        rmSync(report, { force: true });
      }
      resolve({
        code,
        signal,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        wallSeconds,
        maxRssKiB,
        cpuSeconds,
        rssMethod,
        stalled,
      });
    });
  });
}

function childPid(pid) {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return children === '' ? undefined : Number(children.split(' ')[0]);
  } catch {
    return undefined;
  }
}

export function median(values) {
  const sorted = values.filter((v) => v !== undefined && !Number.isNaN(v)).sort((a, b) => a - b);
  return sorted.length === 0 ? undefined : sorted[Math.floor(sorted.length / 2)];
}

/** Polls `probe` every 50 ms until it returns a truthy value or `timeoutMs` passes; says what it saw. */
export async function waitFor(what, probe, timeoutMs, describe = () => '') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; saw: ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
  }
}
