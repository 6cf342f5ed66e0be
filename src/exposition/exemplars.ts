/** One exemplar: its labels, the observed value, when (ms since the epoch). */
export interface Exemplar {
  labels: Readonly<Record<string, string>>;
  value: number;
  timestampMs: number;
}
