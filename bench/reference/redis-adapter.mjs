// A Redis adapter for the reference provider: the durable store the issue compares the code
// flow and refresh against ("both sides keep grants across a restart"). It follows the shape of
// the Redis adapter oidc-provider documents in its examples: one key per model instance,
// single-use models (codes, refresh tokens) as hashes so `consume` marks a field, every
// token of a grant listed under the grant so `revokeByGrantId` deletes them together, and a
// `uid` index for sessions and interactions. One ioredis client for the process.
//
// Environment: REDIS_URL.
import Redis from 'ioredis';

const client = new Redis(process.env.REDIS_URL, { keyPrefix: 'oidc:' });

// Models bound to a grant, and models used once.
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest']);
const CONSUMABLE = new Set(['AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest']);

export default class RedisAdapter {
  constructor(name) {
    this.name = name;
  }

  key(id) {
    return `${this.name}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const multi = client.multi();
    if (CONSUMABLE.has(this.name)) {
      multi.hset(key, { payload: JSON.stringify(payload) });
    } else {
      multi.set(key, JSON.stringify(payload));
    }
    if (expiresIn) multi.expire(key, expiresIn);
    if (GRANTABLE.has(this.name) && payload.grantId) {
      const grantKey = `grant:${payload.grantId}`;
      multi.rpush(grantKey, key);
      const ttl = await client.ttl(grantKey);
      if (expiresIn > ttl) multi.expire(grantKey, expiresIn);
    }
    if (payload.userCode) {
      multi.set(`userCode:${payload.userCode}`, id, 'EX', expiresIn);
    }
    if (payload.uid) {
      multi.set(`uid:${payload.uid}`, id, 'EX', expiresIn);
    }
    await multi.exec();
  }

  async find(id) {
    if (CONSUMABLE.has(this.name)) {
      const stored = await client.hgetall(this.key(id));
      if (!stored || !stored.payload) return undefined;
      const { payload, ...fields } = stored;
      return { ...fields, ...JSON.parse(payload) };
    }
    const stored = await client.get(this.key(id));
    return stored ? JSON.parse(stored) : undefined;
  }

  async findByUid(uid) {
    const id = await client.get(`uid:${uid}`);
    return id ? this.find(id) : undefined;
  }

  async findByUserCode(userCode) {
    const id = await client.get(`userCode:${userCode}`);
    return id ? this.find(id) : undefined;
  }

  async destroy(id) {
    await client.del(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const grantKey = `grant:${grantId}`;
    const keys = await client.lrange(grantKey, 0, -1);
    const multi = client.multi();
    for (const key of keys) multi.del(key); // stored without the prefix, which del adds
    multi.del(grantKey);
    await multi.exec();
  }

  async consume(id) {
    await client.hset(this.key(id), 'consumed', Math.floor(Date.now() / 1000));
  }
}
