/**
 * A browser's invitation to a task: the task in the query, the enrollment token in the
 * fragment, which browsers never send to a server, so no request log or proxy sees it.
 */
export function inviteLink(origin: string, taskId: number, token: string): string {
  return `${origin}/contribute/?task=${taskId}#token=${encodeURIComponent(token)}`;
}

/** What the contribute page was opened with: its task (default 1) and the invitation's token, if any. */
export function readInvite(location: { search: string; hash: string }): { taskId: number; token: string | null } {
  const query = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ''));
  return { taskId: Number(query.get('task') ?? 1), token: fragment.get('token') };
}
