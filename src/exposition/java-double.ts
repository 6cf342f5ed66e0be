/**
 * Formats a number as the Prometheus Java client 0.9 does (Java's `Double.toString`, with
 * `+Inf`/`-Inf`/`NaN`): always a decimal point, and `1.2345678E7` notation below 1e-3 or from 1e7.
 */
export function formatJavaDouble(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (value === 0) return Object.is(value, -0) ? "-0.0" : "0.0";
  const magnitude = Math.abs(value);
  // Counts and whole milliseconds are most samples; they need no digit inspection.
  if (Number.isInteger(value) && magnitude < 1e7) return `${value}.0`;
  if (magnitude >= 1e-3 && magnitude < 1e7) {
    // JS prints this range without an exponent, using the same shortest round-trip digits as Java.
    const plain = String(value);
    return plain.includes(".") ? plain : `${plain}.0`;
  }
  const [mantissa = "", exponent = ""] = value.toExponential().split("e");
  const digits = mantissa.includes(".") ? mantissa : `${mantissa}.0`;
  return `${digits}E${exponent.startsWith("+") ? exponent.slice(1) : exponent}`;
}
