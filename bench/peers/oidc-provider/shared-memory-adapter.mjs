// An oidc-provider storage adapter for bench/user-tokens.sh: everything in the memory of each
// worker process, every write copied to the other workers of the cluster before it returns.
//
// Why not oidc-provider's own MemoryAdapter: it keeps each process's artifacts apart (a code
// issued by one worker is unknown to the other, and Node's cluster hands each new connection to
// either), and it is an LRU of about 1,000 entries, which loses a pool of pre-issued codes and
// makes each refresh-token rotation scan all the tokens of its grant. A real cluster would use a
// shared store such as Redis (a network round trip per read); this one is kinder to the peer:
// reads stay in-process and only writes cross processes.
//
// Consistency: a write (upsert, consume, destroy, revokeByGrantId) is applied here at once and
// resolves only once every other worker has applied it too, so anything a response tells a
// client about (a code, a rotated refresh token) is known to every worker by the time the client
// can use it. Two simultaneous uses of one token on two workers could both succeed (a replay that
// a single store would catch); the benchmark never replays.
//
// The primary relays: workers send batches of writes (one message per event-loop turn) to the
// primary, which forwards them to the other workers and acknowledges back once they all applied
// them. With one worker nothing crosses processes. Call installRelay() in the primary.

import cluster from 'node:cluster';

const TAG = 'bench-adapter';
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

// ------------------------------------------------------------------------------ the store
class Store {
  #entries = new Map(); // `${model}:${id}` -> { payload, expiresAt (ms, or null), grantId }
  #grants = new Map(); // grantId -> Set of entry keys
  #index = new Map(); // `sessionUid:${uid}` and `userCode:${code}` -> id
  #expiring = new Map(); // second -> entry keys expiring then

  constructor() {
    setInterval(() => this.#sweep(), 1000).unref();
  }

  get(key) {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== null && entry.expiresAt <= Date.now()) {
      this.#delete(key);
      return undefined;
    }
    return entry.payload;
  }

  lookup(indexKey) {
    return this.#index.get(indexKey);
  }

  // One write; the same op gives the same result in every worker.
  apply([op, model, id, payload, expiresAt]) {
    switch (op) {
      case 'upsert': {
        const key = `${model}:${id}`;
        this.#delete(key);
        const grantId = GRANTABLE.has(model) ? payload.grantId : undefined;
        this.#entries.set(key, { payload, expiresAt, grantId });
        if (grantId) {
          let members = this.#grants.get(grantId);
          if (!members) this.#grants.set(grantId, members = new Set());
          members.add(key);
        }
        if (model === 'Session' && payload.uid) this.#index.set(`sessionUid:${payload.uid}`, id);
        if (payload.userCode) this.#index.set(`userCode:${payload.userCode}`, id);
        if (expiresAt !== null) {
          const second = Math.ceil(expiresAt / 1000);
          let keys = this.#expiring.get(second);
          if (!keys) this.#expiring.set(second, keys = []);
          keys.push(key);
        }
        break;
      }
      case 'consume': {
        const entry = this.#entries.get(`${model}:${id}`);
        if (entry) entry.payload.consumed = payload;
        break;
      }
      case 'destroy':
        this.#delete(`${model}:${id}`);
        break;
      case 'revokeByGrantId': {
        const members = this.#grants.get(id);
        if (members) for (const key of [...members]) this.#delete(key);
        this.#grants.delete(id);
        break;
      }
      default:
        throw new Error(`shared-memory-adapter: unknown op ${op}`);
    }
  }

  #delete(key) {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    const { payload, grantId } = entry;
    const id = key.slice(key.indexOf(':') + 1);
    if (payload.uid && this.#index.get(`sessionUid:${payload.uid}`) === id) {
      this.#index.delete(`sessionUid:${payload.uid}`);
    }
    if (payload.userCode && this.#index.get(`userCode:${payload.userCode}`) === id) {
      this.#index.delete(`userCode:${payload.userCode}`);
    }
    if (grantId) {
      const members = this.#grants.get(grantId);
      members?.delete(key);
      if (members?.size === 0) this.#grants.delete(grantId);
    }
  }

  // Drops what expired, a second's worth of keys at a time (no scan of the whole store).
  #sweep() {
    const now = Date.now();
    for (const [second, keys] of this.#expiring) {
      if (second * 1000 > now) continue;
      this.#expiring.delete(second);
      for (const key of keys) {
        const entry = this.#entries.get(key);
        if (entry && entry.expiresAt !== null && entry.expiresAt <= now) this.#delete(key);
      }
    }
  }
}

// ------------------------------------------------------------------------------ replication
const store = new Store();
let replicate = false;
let queue = [];
let waiting = [];
let nextBatch = 0;
const inFlight = new Map(); // batch number -> resolve functions

function flush() {
  const ops = queue;
  const done = waiting;
  queue = [];
  waiting = [];
  const batch = nextBatch;
  nextBatch += 1;
  inFlight.set(batch, done);
  process.send({ [TAG]: 'ops', batch, ops });
}

function write(op) {
  store.apply(op);
  if (!replicate) return Promise.resolve();
  return new Promise((resolve) => {
    if (queue.length === 0) setImmediate(flush);
    queue.push(op);
    waiting.push(resolve);
  });
}

// In a worker: take part in the cluster's replication (workers: how many there are).
export function joinCluster(workers) {
  if (!cluster.isWorker || workers < 2) return;
  replicate = true;
  process.on('message', (message) => {
    const kind = message?.[TAG];
    if (kind === 'ops') {
      for (const op of message.ops) store.apply(op);
      process.send({ [TAG]: 'applied', origin: message.origin, batch: message.batch });
    } else if (kind === 'ack') {
      const done = inFlight.get(message.batch);
      inFlight.delete(message.batch);
      for (const resolve of done ?? []) resolve();
    }
  });
}

// In the primary: forward each worker's writes to the others, acknowledge when all applied.
export function installRelay() {
  const pending = new Map(); // `${worker id}:${batch}` -> acknowledgements still awaited
  cluster.on('message', (worker, message) => {
    const kind = message?.[TAG];
    if (kind === 'ops') {
      const others = Object.values(cluster.workers).filter((w) => w && w.id !== worker.id);
      if (others.length === 0) {
        worker.send({ [TAG]: 'ack', batch: message.batch });
        return;
      }
      pending.set(`${worker.id}:${message.batch}`, others.length);
      const forward = { [TAG]: 'ops', origin: worker.id, batch: message.batch, ops: message.ops };
      for (const other of others) other.send(forward);
    } else if (kind === 'applied') {
      const key = `${message.origin}:${message.batch}`;
      const left = pending.get(key) - 1;
      if (left > 0) {
        pending.set(key, left);
        return;
      }
      pending.delete(key);
      cluster.workers[message.origin]?.send({ [TAG]: 'ack', batch: message.batch });
    }
  });
}

// ------------------------------------------------------------------------------ the adapter
export default class SharedMemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  async upsert(id, payload, expiresIn) {
    // null, not Infinity: the copies cross processes as JSON.
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : null;
    return write(['upsert', this.model, id, payload, expiresAt]);
  }

  async find(id) {
    return store.get(`${this.model}:${id}`);
  }

  async findByUid(uid) {
    const id = store.lookup(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = store.lookup(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    return write(['consume', this.model, id, Math.floor(Date.now() / 1000)]);
  }

  async destroy(id) {
    return write(['destroy', this.model, id]);
  }

  async revokeByGrantId(grantId) {
    return write(['revokeByGrantId', this.model, grantId]);
  }
}
