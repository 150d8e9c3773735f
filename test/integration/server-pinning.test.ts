import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FederatedClient } from '../../client/federated-client.ts';
import { cryptoReady, generateSigningKeyPair } from '../../shared/crypto/sodium.ts';
import { startHarness, type Harness } from '../support/harness.ts';

describe('server key pinning', () => {
  let h: Harness;
  beforeAll(async () => {
    await cryptoReady();
    h = await startHarness();
  });
  afterAll(() => h.close());

  it('refuses a server whose key differs from the pinned one, before loading any data', async () => {
    const task = await h.createTask({ name: 'pinning' });
    let dataLoaded = false;
    const client = new FederatedClient({
      server: h.url,
      taskId: task.id,
      kind: 'edge',
      enrollment: { token: h.token(task.id) },
      pinnedServerKey: generateSigningKeyPair().publicKey,
      activateBackend: async () => 'cpu',
      data: async () => {
        dataLoaded = true;
        throw new Error('unreachable');
      },
    });
    await expect(client.start()).rejects.toMatchObject({ code: 'SERVER_KEY_MISMATCH' });
    expect(dataLoaded).toBe(false);
    client.stop();
  });
});
