// The seed's Drizzle schema (src/db/schema.ts), ported to plain JavaScript unchanged, and the
// DDL that `drizzle-kit push` would have run for it. The peer creates its tables itself on start
// (CREATE ... IF NOT EXISTS) so that the benchmark does not depend on drizzle-kit.
import { pgTable, bigserial, text, timestamp, boolean, index } from 'drizzle-orm/pg-core';

// Extended users table with auth fields
export const users = pgTable('users', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  email: text('email').notNull().unique(),
  name: text('name').notNull(),
  passwordHash: text('password_hash').notNull(),
  emailVerified: boolean('email_verified').notNull().default(false),
  createdAt: timestamp('created_at', { withTimezone: true }).defaultNow().notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).defaultNow().notNull(),
}, (table) => ({
  emailIdx: index('users_email_idx').on(table.email),
}));

// Refresh tokens table
export const refreshTokens = pgTable('refresh_tokens', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  userId: bigserial('user_id', { mode: 'number' }).notNull().references(() => users.id, { onDelete: 'cascade' }),
  token: text('token').notNull().unique(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).defaultNow().notNull(),
}, (table) => ({
  tokenIdx: index('refresh_tokens_token_idx').on(table.token),
  userIdIdx: index('refresh_tokens_user_id_idx').on(table.userId),
}));

// Verification tokens table (for email verification)
export const verificationTokens = pgTable('verification_tokens', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  userId: bigserial('user_id', { mode: 'number' }).notNull().references(() => users.id, { onDelete: 'cascade' }),
  token: text('token').notNull().unique(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).defaultNow().notNull(),
}, (table) => ({
  tokenIdx: index('verification_tokens_token_idx').on(table.token),
}));

// Password reset tokens table
export const passwordResetTokens = pgTable('password_reset_tokens', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  userId: bigserial('user_id', { mode: 'number' }).notNull().references(() => users.id, { onDelete: 'cascade' }),
  token: text('token').notNull().unique(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).defaultNow().notNull(),
}, (table) => ({
  tokenIdx: index('password_reset_tokens_token_idx').on(table.token),
}));

export const schema = { users, refreshTokens, verificationTokens, passwordResetTokens };

// What drizzle-kit push creates for the tables above, with drizzle-kit's constraint names. Note
// that the seed declares each user_id as bigserial, so drizzle-kit gives it a sequence of its own
// (a default that is never used, since every insert sets user_id); kept as the seed has it.
// The *_idx indexes duplicate the UNIQUE constraints' own indexes; also kept, since users have
// them today and every insert pays for them.
function tokenTable(name, extraIndexes = []) {
  return [
    `CREATE TABLE IF NOT EXISTS "${name}" (
      "id" bigserial PRIMARY KEY NOT NULL,
      "user_id" bigserial NOT NULL,
      "token" text NOT NULL,
      "expires_at" timestamp with time zone NOT NULL,
      "created_at" timestamp with time zone DEFAULT now() NOT NULL,
      CONSTRAINT "${name}_token_unique" UNIQUE("token"),
      CONSTRAINT "${name}_user_id_users_id_fk" FOREIGN KEY ("user_id")
        REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action
    )`,
    `CREATE INDEX IF NOT EXISTS "${name}_token_idx" ON "${name}" USING btree ("token")`,
    ...extraIndexes,
  ];
}

export const DDL = [
  `CREATE TABLE IF NOT EXISTS "users" (
    "id" bigserial PRIMARY KEY NOT NULL,
    "email" text NOT NULL,
    "name" text NOT NULL,
    "password_hash" text NOT NULL,
    "email_verified" boolean DEFAULT false NOT NULL,
    "created_at" timestamp with time zone DEFAULT now() NOT NULL,
    "updated_at" timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT "users_email_unique" UNIQUE("email")
  )`,
  `CREATE INDEX IF NOT EXISTS "users_email_idx" ON "users" USING btree ("email")`,
  ...tokenTable('refresh_tokens', [
    `CREATE INDEX IF NOT EXISTS "refresh_tokens_user_id_idx" ON "refresh_tokens" USING btree ("user_id")`,
  ]),
  ...tokenTable('verification_tokens'),
  ...tokenTable('password_reset_tokens'),
];

// Creates the tables and indexes if they do not exist. One transaction, under an advisory lock,
// so that a server and seed.js started together do not race on CREATE TABLE IF NOT EXISTS.
export async function ensureSchema(pool) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT pg_advisory_xact_lock(hashtext('authd-bench-node-peer schema'))");
    for (const statement of DDL) await client.query(statement);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
