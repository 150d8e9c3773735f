import { toBase64 } from '../shared/crypto/sodium.ts';
import { TributaryError } from '../shared/errors.ts';
import { rest } from './rest.ts';
import type { Enrollment } from './types.ts';

/** Binds a device's identity key to a task over REST, with an operator's token or by the task's open enrollment. */
export async function enroll(server: string, taskId: number, identityKey: Uint8Array, how: Enrollment): Promise<void> {
  const key = toBase64(identityKey);
  const [path, body] = how === 'open' ? [`/api/tasks/${taskId}/enroll`, { identityKey: key }] : ['/api/enroll', { token: how.token, identityKey: key }];
  const reply = await rest<{ taskId: number }>('POST', new URL(path, server), { body });
  // A token names its own task: enrolled there, this client could still not join the one it was given.
  if (reply.taskId !== taskId) throw new TributaryError('ENROLLMENT_TOKEN_INVALID', `the token is for task ${reply.taskId}, not ${taskId}`);
}
