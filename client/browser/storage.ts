/**
 * A small key-value store over IndexedDB, for what a browser keeps between visits: its
 * identity, the server key it pinned, its data shard, its own images.
 */
const DB_NAME = 'tributary';
const STORE = 'kv';

let opened: Promise<IDBDatabase> | undefined;

function database(): Promise<IDBDatabase> {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB unavailable'));
  });
  return opened;
}

async function transact<T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await database();
  return new Promise((resolve, reject) => {
    const request = work(db.transaction(STORE, mode).objectStore(STORE));
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB request failed'));
  });
}

export function getItem<T>(key: string): Promise<T | undefined> {
  return transact('readonly', (store) => store.get(key) as IDBRequest<T | undefined>);
}

export async function setItem(key: string, value: unknown): Promise<void> {
  await transact('readwrite', (store) => store.put(value, key));
}

export async function removeItem(key: string): Promise<void> {
  await transact('readwrite', (store) => store.delete(key));
}
