/**
 * What may be printed of a URL that may carry credentials. A collector's endpoint can hold a user
 * and password (`https://user:secret@host`, sent as basic authentication) or a token in its query
 * (`?api_key=…`); neither may reach a log line or an error message, so both are masked wherever a
 * URL from the configuration is printed, whether or not it parses.
 */
export const REDACTED = "***";

/**
 * `http://user:pw@host:4318/v1/metrics?api_key=k#x` → `http://***@host:4318/v1/metrics?***`:
 * user information, query and fragment masked, scheme, host, port and path kept. Works on text
 * that is not a valid URL too (then by pattern), so error messages about a malformed URL can
 * show it as safely as a valid one.
 */
export function redactUrl(text: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(text);
  const head = scheme === null ? "" : scheme[0];
  const rest = text.slice(head.length);
  // A query or fragment is masked whole: names like `api_key` say little without their values.
  const tailAt = rest.search(/[?#]/);
  let body = tailAt === -1 ? rest : rest.slice(0, tailAt);
  const tail = tailAt === -1 ? "" : `?${REDACTED}`;
  // User information ends at the last @ before the query. A URL that parses without any is left
  // alone (an @ in its path is no password); one that does not parse is masked up to that @ in
  // case its user information holds a / or \\ that ends the authority early.
  const at = body.lastIndexOf("@");
  if (at !== -1 && !(parsesWithoutUser(text) && body.slice(0, at).search(/[/\\]/) !== -1)) {
    body = `${REDACTED}@${body.slice(at + 1)}`;
  }
  return `${head}${body}${tail}`;
}

function parsesWithoutUser(text: string): boolean {
  try {
    const url = new URL(text);
    return url.username === "" && url.password === "";
  } catch {
    return false;
  }
}

/**
 * The parts of a URL that {@link redactUrl} masks, as separate strings (user, password, the query
 * and each of its values), for masking wherever else they might turn up, such as a library's
 * error message. Empty for text that is not a URL.
 */
export function urlSecrets(text: string): string[] {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return [];
  }
  const parts = [url.username, url.password, url.search.slice(1), url.hash.slice(1)];
  for (const value of url.searchParams.values()) parts.push(value);
  return parts.flatMap((part) => {
    if (part === "") return [];
    try {
      return [part, decodeURIComponent(part)];
    } catch {
      return [part];
    }
  });
}
