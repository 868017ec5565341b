/**
 * Vector's `multiline` aggregation (src/line_agg.rs) as a pure module over line bytes.
 *
 * A line matching `start_pattern` opens a group while none is open; otherwise it passes through
 * alone. While a group is open, each line is tested against `condition_pattern`:
 *
 * - `continue_through`: a matching line joins the group; a non-matching line ends the group and
 *   opens the next one itself.
 * - `continue_past`: a matching line joins the group; a non-matching line joins it and ends it.
 * - `halt_before`: a non-matching line joins the group; a matching line ends the group and opens
 *   the next one itself.
 * - `halt_with`: a non-matching line joins the group; a matching line joins it and ends it.
 *
 * An open group with no new line for `timeout_ms` is emitted as it is. Lines of a group are
 * joined with `\n`. Each output carries the file offset just past its last line, and `safeEnd`
 * is the offset below which every line has been output: the most a checkpoint may advance to.
 */

export type MultilineMode = 'continue_through' | 'continue_past' | 'halt_before' | 'halt_with';
export const MULTILINE_MODES: readonly MultilineMode[] = ['continue_through', 'continue_past', 'halt_before', 'halt_with'];

export interface MultilineConfig {
  startPattern: RegExp;
  conditionPattern: RegExp;
  mode: MultilineMode;
  timeoutMs: number;
}

export interface AggregatedLine {
  data: Uint8Array;
  /** File offset just past the last input line of this output. */
  end: number;
}

const NEWLINE = Uint8Array.of(0x0a);
const decoder = new TextDecoder();

export class LineAggregator {
  private group: Uint8Array[] | null = null;
  private groupEnd = 0;
  /** Offset just past the line before the open group. */
  private beforeGroup: number;
  private lastEnd: number;
  private lastPushMs = 0;

  constructor(
    private readonly config: MultilineConfig,
    position = 0,
  ) {
    this.beforeGroup = position;
    this.lastEnd = position;
  }

  /** Offset up to which every line has been output. */
  get safeEnd(): number {
    return this.group === null ? this.lastEnd : this.beforeGroup;
  }

  get pending(): boolean {
    return this.group !== null;
  }

  /** Adds one line (bytes without delimiter, ending at file offset `end`); returns what is complete. */
  push(line: Uint8Array, end: number, now = Date.now()): AggregatedLine[] {
    this.lastPushMs = now;
    const previousEnd = this.lastEnd;
    this.lastEnd = end;
    const text = decoder.decode(line);
    if (this.group === null) {
      if (test(this.config.startPattern, text)) {
        this.open(line, end, previousEnd);
        return [];
      }
      return [{ data: line, end }];
    }
    const matched = test(this.config.conditionPattern, text);
    switch (this.config.mode) {
      case 'continue_through':
        if (matched) return this.add(line, end);
        return this.restart(line, end, previousEnd);
      case 'continue_past':
        this.add(line, end);
        return matched ? [] : [this.take()];
      case 'halt_before':
        if (!matched) return this.add(line, end);
        return this.restart(line, end, previousEnd);
      case 'halt_with':
        this.add(line, end);
        return matched ? [this.take()] : [];
    }
  }

  /** Emits the open group if no line came for `timeout_ms`. */
  expire(now = Date.now()): AggregatedLine | null {
    if (this.group === null || now - this.lastPushMs < this.config.timeoutMs) return null;
    return this.take();
  }

  /** Emits the open group, if any (end of input). */
  flush(): AggregatedLine | null {
    return this.group === null ? null : this.take();
  }

  /** Forgets the open group and restarts at `position` (after truncation). */
  reset(position: number): void {
    this.group = null;
    this.beforeGroup = position;
    this.lastEnd = position;
  }

  private open(line: Uint8Array, end: number, before: number): void {
    this.group = [line];
    this.groupEnd = end;
    this.beforeGroup = before;
  }

  private add(line: Uint8Array, end: number): AggregatedLine[] {
    this.group!.push(line);
    this.groupEnd = end;
    return [];
  }

  private restart(line: Uint8Array, end: number, before: number): AggregatedLine[] {
    const done = this.take();
    this.open(line, end, before);
    return [done];
  }

  private take(): AggregatedLine {
    const parts = this.group!;
    this.group = null;
    this.beforeGroup = this.groupEnd;
    let total = parts.length - 1;
    for (const p of parts) total += p.byteLength;
    const data = new Uint8Array(total);
    let at = 0;
    parts.forEach((p, i) => {
      if (i > 0) data.set(NEWLINE, at++);
      data.set(p, at);
      at += p.byteLength;
    });
    return { data, end: this.groupEnd };
  }
}

function test(pattern: RegExp, text: string): boolean {
  pattern.lastIndex = 0;
  return pattern.test(text);
}
