// Seeds the peer's database with verified users for the benchmark:
//
//   DATABASE_URL=postgres://... node seed.js --users N --password P [--prefix bench] [--batch 5000]
//
// inserts users {prefix}{i}@bench.example, i = 0 .. N-1, named "{prefix}{i}", email_verified =
// true, all with one bcrypt hash of P (cost BCRYPT_ROUNDS, default 10). Hashing once keeps
// seeding fast, and a login costs the same whichever hash it compares against. Multi-row
// INSERT ... ON CONFLICT DO NOTHING in batches, so running it again (or with a larger N) only adds
// the users that are missing. Creates the tables first if they do not exist, as server.js does.
import { parseArgs } from 'node:util';
import pg from 'pg';
import bcrypt from 'bcrypt';
import { ensureSchema } from './schema.js';

function fail(message) {
  console.error(`seed.js: ${message}`);
  console.error('usage: DATABASE_URL=postgres://... node seed.js --users N --password P [--prefix bench] [--batch 5000]');
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      users: { type: 'string' },
      password: { type: 'string' },
      prefix: { type: 'string', default: 'bench' },
      batch: { type: 'string', default: '5000' },
    },
    strict: true,
  }));
} catch (error) {
  fail(error.message);
}

const DATABASE_URL = process.env.DATABASE_URL;
if (!DATABASE_URL) fail('DATABASE_URL must be set');
const count = Number(args.users);
if (!Number.isInteger(count) || count < 0) fail('--users must be a whole number');
if (args.password === undefined) fail('--password is required');
if (!/^[A-Za-z0-9._+-]*$/.test(args.prefix)) fail('--prefix may only hold letters, digits and . _ + -');
// Two parameters a row, at most 65,535 in a statement.
const batch = Number(args.batch);
if (!Number.isInteger(batch) || batch < 1 || batch > 30000) fail('--batch must be from 1 to 30000');
const rounds = process.env.BCRYPT_ROUNDS ? Number(process.env.BCRYPT_ROUNDS) : 10;
if (!Number.isInteger(rounds) || rounds < 4 || rounds > 31) fail('BCRYPT_ROUNDS must be from 4 to 31');
if (args.password.length < 8) {
  console.error('seed.js: note: the password is shorter than 8 characters, which signup would refuse (login does not check)');
}

// INSERT INTO users (...) VALUES ($2, $3, $1, true), ($4, $5, $1, true), ...: $1 is the hash.
function insertSql(rows) {
  const values = [];
  for (let r = 0; r < rows; r++) values.push(`($${2 * r + 2}, $${2 * r + 3}, $1, true)`);
  return `INSERT INTO users (email, name, password_hash, email_verified) VALUES ${values.join(', ')} ON CONFLICT DO NOTHING`;
}

const started = process.hrtime.bigint();
const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
let inserted = 0;
try {
  await ensureSchema(pool);
  const hash = await bcrypt.hash(args.password, rounds);
  const fullSql = insertSql(batch);
  let nextReport = 100_000;
  for (let start = 0; start < count; start += batch) {
    const rows = Math.min(batch, count - start);
    const params = [hash];
    for (let i = start; i < start + rows; i++) {
      const local = `${args.prefix}${i}`;
      params.push(`${local}@bench.example`, local);
    }
    const result = await pool.query(rows === batch ? fullSql : insertSql(rows), params);
    inserted += result.rowCount;
    if (start + rows >= nextReport && start + rows < count) {
      console.error(`seed.js: ${start + rows} of ${count} done (${seconds().toFixed(1)} s)`);
      nextReport += 100_000;
    }
  }
} catch (error) {
  console.error(`seed.js: failed after inserting ${inserted} users:`, error);
  await pool.end().catch(() => {});
  process.exit(1);
}
await pool.end();

const last = count > 0 ? `${args.prefix}${count - 1}` : '(none)';
console.log(
  `inserted ${inserted} of ${count} users (${args.prefix}0..${last}@bench.example, ` +
  `${count - inserted} already there) in ${seconds().toFixed(1)} s, bcrypt cost ${rounds}`,
);
