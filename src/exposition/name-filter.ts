/**
 * The sample names asked for with `name[]` (repeatable; the brackets may be URL-encoded), or
 * undefined when the query has none: TorchServe then returns everything. `name=` is ignored.
 */
export function parseNameFilter(search: string): ReadonlySet<string> | undefined {
  const names = new URLSearchParams(search).getAll("name[]");
  return names.length === 0 ? undefined : new Set(names);
}
