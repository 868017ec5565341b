// Types for generate.js, so that type-checked tests can import it.
export declare const DEFAULT_LINES: number;
export declare const DEFAULT_SEED: number;
export declare const CORPUS_EPOCH_MS: number;
export declare const METADATA_SHARE: number;
export declare function mulberry32(seed: number): () => number;
export declare function createLineGenerator(seed?: number): { next: () => string; nextCri: () => string };
export interface WriteCorpusOptions {
  file: string;
  lines?: number;
  seed?: number;
  format?: 'json' | 'cri';
}
export declare function writeCorpus(options: WriteCorpusOptions): { file: string; lines: number; bytes: number };
export declare function makeBenchDir(): string;
