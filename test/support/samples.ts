/** The value of one sample of a scrape (`series` is the sample's text up to its value), or undefined. */
export function sampleValue(text: string, series: string): number | undefined {
  const found = text.split("\n").find((l) => l.startsWith(`${series} `));
  return found === undefined ? undefined : Number(found.slice(series.length + 1));
}
