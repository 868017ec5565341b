/**
 * Tracks batches of one file that are in flight. Acknowledgements may arrive in any order; the
 * checkpoint may only advance to the end offset of the longest prefix of acknowledged batches, so
 * a restart never skips a line that a sink has not accepted.
 */
export interface AckTicket {
  readonly end: number;
  acked: boolean;
}

export class AckTracker {
  private queue: AckTicket[] = [];
  private head = 0;
  private acked: number;
  private last: number;

  constructor(position: number) {
    this.acked = position;
    this.last = position;
  }

  /** End of the batch or mark added last. */
  get lastEnd(): number {
    return this.last;
  }

  /** The checkpointable offset: end of the last batch of the acknowledged prefix. */
  get position(): number {
    return this.acked;
  }

  /** Batches added and not yet part of the acknowledged prefix. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Registers a batch (or a position-only mark, already acknowledged) that ends at `end`. */
  add(end: number, acked = false): AckTicket {
    const ticket: AckTicket = { end, acked };
    this.last = end;
    this.queue.push(ticket);
    if (acked) this.advance();
    return ticket;
  }

  /**
   * Starts over at `position` (the file was truncated): batches still in flight belong to the old
   * content and no longer move the position when they are acknowledged.
   */
  reset(position: number): void {
    this.queue = [];
    this.head = 0;
    this.acked = position;
    this.last = position;
  }

  /** Marks a batch acknowledged. Returns true when the checkpointable offset moved. */
  ack(ticket: AckTicket): boolean {
    ticket.acked = true;
    return this.advance();
  }

  private advance(): boolean {
    const before = this.acked;
    while (this.head < this.queue.length && this.queue[this.head]!.acked) {
      this.acked = this.queue[this.head]!.end;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return this.acked !== before;
  }
}
