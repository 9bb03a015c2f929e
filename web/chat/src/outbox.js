// What a person typed and the server has not stored yet, kept in IndexedDB
// so that closing the tab (or the browser) loses none of it: the outbox of
// unsent messages and the half-typed draft of each conversation. One
// database per user of an origin ("duplex-chat/alice"), since IndexedDB is
// already per origin.
//
// The IMStore writes a message here before it shows "sending", deletes it
// once the server has stored it, and reads the outbox back on the next open
// to send it again with the same cid (the server deduplicates by cid).
//
// Both implementations have the same interface:
//   load()              → Promise<{ outbox: Message[], drafts: Map<conv, text> }>
//   put(m)              → Promise, resolves once the message is committed
//   remove(cid)         → Promise
//   draft(conv, text)   → Promise ('' deletes it)

const VERSION = 1;

// The fields of a message worth keeping: what it is, not how it is shown.
function record(m) {
  const { cid, conv, from, text, ts, status, error, permanent } = m;
  return { cid, conv, from, text, ts, status, error, permanent: !!permanent };
}

/** A request of IndexedDB as a promise of its result. */
export function done(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** A transaction of IndexedDB as a promise that it committed. */
export function committed(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error('transaction aborted'));
  });
}

/** The outbox in IndexedDB, for `uid` on this origin; null where there is no IndexedDB. */
export function idbOutbox(uid) {
  if (typeof indexedDB === 'undefined') return null;
  let db = null;
  const open = () => {
    if (db) return db;
    db = new Promise((resolve, reject) => {
      const req = indexedDB.open(`duplex-chat/${uid}`, VERSION);
      req.onupgradeneeded = () => {
        const d = req.result;
        if (!d.objectStoreNames.contains('outbox')) d.createObjectStore('outbox', { keyPath: 'cid' });
        if (!d.objectStoreNames.contains('drafts')) d.createObjectStore('drafts', { keyPath: 'conv' });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error('IndexedDB blocked'));
    });
    db.catch(() => { db = null; });
    return db;
  };
  const write = async (store, fn) => {
    const d = await open();
    const tx = d.transaction(store, 'readwrite', { durability: 'strict' });
    fn(tx.objectStore(store));
    return committed(tx);
  };
  return {
    async load() {
      const d = await open();
      const tx = d.transaction(['outbox', 'drafts'], 'readonly');
      const [outbox, drafts] = await Promise.all([
        done(tx.objectStore('outbox').getAll()),
        done(tx.objectStore('drafts').getAll()),
      ]);
      outbox.sort((a, b) => a.ts - b.ts);
      return { outbox, drafts: new Map(drafts.map((x) => [x.conv, x.text])) };
    },
    put: (m) => write('outbox', (s) => s.put(record(m))),
    remove: (cid) => write('outbox', (s) => s.delete(cid)),
    draft: (conv, text) => write('drafts', (s) => (text ? s.put({ conv, text }) : s.delete(conv))),
  };
}

/** The same in memory: for tests, and for a second store sharing one (`shared`). */
export function memoryOutbox(shared = { outbox: new Map(), drafts: new Map() }) {
  return {
    shared,
    async load() {
      const outbox = [...shared.outbox.values()].map((m) => ({ ...m })).sort((a, b) => a.ts - b.ts);
      return { outbox, drafts: new Map(shared.drafts) };
    },
    async put(m) { shared.outbox.set(m.cid, record(m)); },
    async remove(cid) { shared.outbox.delete(cid); },
    async draft(conv, text) {
      if (text) shared.drafts.set(conv, text);
      else shared.drafts.delete(conv);
    },
  };
}
