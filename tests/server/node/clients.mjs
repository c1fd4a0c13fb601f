// node-postgres (pg) and postgres.js (postgres) doing everyday work against one server, for
// tests/server/test_clients_node.py, which runs this against fsql and against PostgreSQL 15
// and compares the two outputs.
//
// Usage: node clients.mjs pg|postgres HOST PORT DATABASE USER
// Prints one JSON object: {operation name: {fields: [[name, type oid]], rows: [...]} or
// {error: SQLSTATE}}. Each operation runs on its own; a failure is recorded, not thrown.
import pg from 'pg';
import postgres from 'postgres';

const [client, host, port, database, user] = process.argv.slice(2);
const out = {};

function plain(value) {
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return value.toString('hex');
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map(plain);
  return value;
}

async function record(name, run) {
  try {
    out[name] = await run();
  } catch (e) {
    out[name] = { error: e.code ?? String(e.message ?? e) };
  }
}

async function withPg() {
  const conn = new pg.Client({ host, port: Number(port), database, user });
  await conn.connect();
  const q = async (text, values) => {
    const r = await conn.query({ text, values, rowMode: 'array' });
    return { fields: r.fields.map((f) => [f.name, f.dataTypeID]), rows: r.rows.map(plain) };
  };
  await record('simple', () => q("SELECT * FROM features.user WHERE user_id = 'u001'"));
  await record('param', () => q('SELECT * FROM features.user WHERE user_id = $1', ['u002']));
  await record('in_list', () => q(
    'SELECT user_id, user_orders FROM features.user WHERE user_id IN ($1, $2) ORDER BY user_id',
    ['u001', 'u003']));
  await record('any_array', () => q(
    'SELECT user_id, user_country FROM features.user WHERE user_id = ANY($1) ORDER BY user_id',
    [['u001', 'u004']]));
  await record('scan_group_by', () => q(
    'SELECT user_country, count(*) AS n FROM features.user GROUP BY user_country ORDER BY 1'));
  await record('offline', () => q(
    'SELECT user_id, feature_time, user_orders_offline FROM offline.user_orders_offline '
    + 'ORDER BY user_id, feature_time LIMIT 5'));
  await record('sources_param', () => q(
    'SELECT user_id, purchase_amount FROM sources.orders WHERE purchase_amount > $1 '
    + 'ORDER BY purchase_amount DESC LIMIT 3', [200]));
  await record('error', () => q('SELECT * FROM no_such_table'));
  await record('after_error', () => q('SELECT 1 AS one'));
  await record('temp_table', async () => {
    await conn.query('CREATE TEMP TABLE spine_pg (user_id text, label bigint)');
    await conn.query('INSERT INTO spine_pg VALUES ($1, $2)', ['u001', 1]);
    await conn.query('INSERT INTO spine_pg VALUES ($1, $2)', ['u002', 0]);
    return q('SELECT * FROM spine_pg ORDER BY user_id');
  });
  await record('types', () => q(
    "SELECT 1::int2 AS a, 2::int4 AS b, 3::int8 AS c, 1.5::float8 AS d, 2.25::numeric(10,2) AS e, "
    + "true AS f, DATE '2024-01-02' AS g, TIMESTAMP '2024-01-02 03:04:05' AS h, 'x'::text AS i"));
  await conn.end();
}

async function withPostgresJs() {
  const sql = postgres({ host, port: Number(port), database, user, max: 1, onnotice: () => {} });
  const shape = (r) => ({
    fields: r.columns.map((c) => [c.name, c.type]),
    rows: r.map((row) => Object.values(row).map(plain)),
  });
  await record('simple', async () => shape(await sql.unsafe(
    "SELECT * FROM features.user WHERE user_id = 'u001'")));
  await record('param', async () => shape(
    await sql`SELECT * FROM features.user WHERE user_id = ${'u002'}`));
  await record('in_list', async () => shape(await sql`
    SELECT user_id, user_orders FROM features.user
    WHERE user_id IN ${sql(['u001', 'u003'])} ORDER BY user_id`));
  await record('scan_group_by', async () => shape(await sql`
    SELECT user_country, count(*) AS n FROM features.user GROUP BY user_country ORDER BY 1`));
  await record('offline', async () => shape(await sql`
    SELECT user_id, feature_time, user_orders_offline FROM offline.user_orders_offline
    ORDER BY user_id, feature_time LIMIT 5`));
  await record('sources_param', async () => shape(await sql`
    SELECT user_id, purchase_amount FROM sources.orders WHERE purchase_amount > ${200}
    ORDER BY purchase_amount DESC LIMIT 3`));
  await record('error', async () => shape(await sql`SELECT * FROM no_such_table`));
  await record('after_error', async () => shape(await sql`SELECT 1 AS one`));
  await record('insert_helper', async () => {
    await sql`CREATE TEMP TABLE spine_js (user_id text, label bigint)`;
    await sql`INSERT INTO spine_js ${sql([{ user_id: 'u001', label: 1 }, { user_id: 'u002', label: 0 }])}`;
    return shape(await sql`SELECT * FROM spine_js ORDER BY user_id`);
  });
  await sql.end();
}

if (client === 'pg') await withPg();
else if (client === 'postgres') await withPostgresJs();
else throw new Error(`unknown client ${client}`);
console.log(JSON.stringify(out));
