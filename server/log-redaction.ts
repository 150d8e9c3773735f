/**
 * Request URLs as logs may show them: the value of any query parameter named like a token
 * (an enrollment token in an old invite link, say) is replaced, so a log shipper or a
 * reader of the log never holds a usable secret.
 */
export function redactUrl(url: string): string {
  const query = url.indexOf('?');
  if (query < 0) return url;
  const params = url.slice(query + 1).split('&').map((pair) => {
    const eq = pair.indexOf('=');
    return eq >= 0 && /token/i.test(decoded(pair.slice(0, eq))) ? `${pair.slice(0, eq)}=[redacted]` : pair;
  });
  return `${url.slice(0, query)}?${params.join('&')}`;
}

/** A parameter name as a server would read it (`to%6Bken` is `token`); malformed escapes as they are. */
function decoded(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

/** A connection URL (PostgreSQL, Redis) fit for a log line or an error: its password replaced. */
export function redactUrlPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '[redacted]';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}
