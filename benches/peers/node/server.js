// authd's Node.js benchmark peer: the auth module authd replaces, as users have it today.
//
// A port to plain JavaScript of the seed document /work/shared/seeds/000_24d50eb1b5e149a0.txt
// ("Add JWT Authentication": Fastify + Drizzle ORM on PostgreSQL + jsonwebtoken + bcrypt + zod).
// Its code is kept as it is, including its quirks (see README.md); what differs is said where it
// differs. Never shipped, not part of authd.
import crypto from 'node:crypto';
import Fastify from 'fastify';
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { eq, and, gt } from 'drizzle-orm';
import jwt from 'jsonwebtoken';
import bcrypt from 'bcrypt';
import { z } from 'zod';
import { schema, users, refreshTokens, verificationTokens, ensureSchema } from './schema.js';

// ---------------------------------------------------------------------------------------------
// Configuration (environment)

function fail(message) {
  console.error(`authd-bench-node-peer: ${message}`);
  process.exit(2);
}

function intFromEnv(name, fallback, min, max) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    fail(`${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(raw)}`);
  }
  return value;
}

const DATABASE_URL = process.env.DATABASE_URL;
if (!DATABASE_URL) fail('DATABASE_URL must be set (postgres://user@host:port/database)');
const PORT = intFromEnv('PORT', 3000, 0, 65535);
const HOST = process.env.HOST || '127.0.0.1';
const PG_POOL = intFromEnv('PG_POOL', 10, 1, 1000);
// The seed hard-codes 10; the benchmark may lower it to measure the rest of a login.
const BCRYPT_ROUNDS = intFromEnv('BCRYPT_ROUNDS', 10, 4, 31);

// ---------------------------------------------------------------------------------------------
// src/auth/utils.ts

// JWT Configuration. The seed refuses to start without both secrets; a benchmark peer has
// defaults instead, which are public and therefore only fit for a benchmark.
const accessSecret = process.env.JWT_ACCESS_SECRET || 'authd-bench-node-peer-access-secret-NOT-SECRET';
const refreshSecret = process.env.JWT_REFRESH_SECRET || 'authd-bench-node-peer-refresh-secret-NOT-SECRET';
const accessExpiresIn = process.env.JWT_ACCESS_EXPIRES_IN || '15m';
const refreshExpiresIn = process.env.JWT_REFRESH_EXPIRES_IN || '7d';
// The seed's .env value (for the links in its placeholder emails).
const APP_URL = process.env.APP_URL || 'http://localhost:3000';

// Password Hashing
async function hashPassword(password) {
  return bcrypt.hash(password, BCRYPT_ROUNDS);
}

async function verifyPassword(password, hash) {
  return bcrypt.compare(password, hash);
}

// Access Token (short-lived)
function generateAccessToken(payload) {
  return jwt.sign(payload, accessSecret, { expiresIn: accessExpiresIn });
}

function verifyAccessToken(token) {
  return jwt.verify(token, accessSecret);
}

// Refresh Token (long-lived)
function generateRefreshToken(payload) {
  return jwt.sign(payload, refreshSecret, { expiresIn: refreshExpiresIn });
}

function verifyRefreshToken(token) {
  return jwt.verify(token, refreshSecret);
}

// Random Token Generation (for email verification, password reset)
function generateRandomToken() {
  return crypto.randomBytes(32).toString('hex');
}

// Token Expiration Calculation
function getTokenExpiration(duration) {
  const now = new Date();

  // Parse duration (e.g., "24h", "1h", "7d")
  const match = duration.match(/^(\d+)([hd])$/);
  if (!match) throw new Error(`Invalid duration format: ${duration}`);

  const [, amount, unit] = match;
  const hours = unit === 'h' ? parseInt(amount) : parseInt(amount) * 24;

  return new Date(now.getTime() + hours * 60 * 60 * 1000);
}

// ---------------------------------------------------------------------------------------------
// src/auth/hook.ts

async function authenticateUser(request, reply) {
  try {
    // Get token from Authorization header
    const authHeader = request.headers.authorization;

    if (!authHeader || !authHeader.startsWith('Bearer ')) {
      reply.status(401).send({ error: 'Missing or invalid authorization header' });
      return;
    }

    const token = authHeader.substring(7); // Remove 'Bearer ' prefix

    // Verify token
    const payload = verifyAccessToken(token);

    // Attach user to request
    request.user = {
      userId: payload.userId,
      email: payload.email,
    };
  } catch (error) {
    if (error.name === 'TokenExpiredError') {
      reply.status(401).send({ error: 'Token expired' });
      return;
    }

    if (error.name === 'JsonWebTokenError') {
      reply.status(401).send({ error: 'Invalid token' });
      return;
    }

    request.log.error(error);
    reply.status(500).send({ error: 'Authentication failed' });
  }
}

// ---------------------------------------------------------------------------------------------
// src/auth/email.ts

// The seed's placeholder console.log()s a multi-line "Verification Email" to stdout on every
// signup. Here it is one debug-level log line instead, written only with LOG=1 LOG_LEVEL=debug
// (to stderr): a stdout write per request would be measured as part of signup, so the benchmark
// would measure the terminal or pipe, and no real deployment prints its emails. The link is
// still built, as the seed builds it.
async function sendVerificationEmail(log, email, token) {
  const verificationUrl = `${APP_URL}/auth/verify-email?token=${token}`;
  log.debug({ to: email, link: verificationUrl }, 'verification email (placeholder, not sent)');
}

// ---------------------------------------------------------------------------------------------
// src/routes/auth.ts (signup, login, refresh, logout; see README.md for what is not ported)

// Validation schemas
const signupSchema = z.object({
  email: z.string().email(),
  name: z.string().min(1),
  password: z.string().min(8, 'Password must be at least 8 characters'),
});

const loginSchema = z.object({
  email: z.string().email(),
  password: z.string(),
});

const refreshTokenSchema = z.object({
  refreshToken: z.string(),
});

async function authRoutes(server) {
  // Signup
  server.post('/auth/signup', async (request, reply) => {
    try {
      const data = signupSchema.parse(request.body);

      // Check if user exists
      const [existingUser] = await server.db
        .select()
        .from(users)
        .where(eq(users.email, data.email))
        .limit(1);

      if (existingUser) {
        reply.status(409).send({ error: 'Email already registered' });
        return;
      }

      // Hash password
      const passwordHash = await hashPassword(data.password);

      // Create user
      const [newUser] = await server.db
        .insert(users)
        .values({
          email: data.email,
          name: data.name,
          passwordHash,
          emailVerified: false,
        })
        .returning({ id: users.id, email: users.email, name: users.name });

      // Generate verification token
      const verificationToken = generateRandomToken();
      const expiresAt = getTokenExpiration(process.env.VERIFICATION_TOKEN_EXPIRES_IN || '24h');

      await server.db.insert(verificationTokens).values({
        userId: newUser.id,
        token: verificationToken,
        expiresAt,
      });

      // Send verification email
      await sendVerificationEmail(request.log, newUser.email, verificationToken);

      reply.status(201).send({
        message: 'User created. Please check your email to verify your account.',
        user: newUser,
      });
    } catch (error) {
      if (error instanceof z.ZodError) {
        reply.status(400).send({ error: 'Invalid input', details: error.errors });
        return;
      }

      server.log.error(error);
      reply.status(500).send({ error: 'Signup failed' });
    }
  });

  // Login
  server.post('/auth/login', async (request, reply) => {
    try {
      const data = loginSchema.parse(request.body);

      // Find user
      const [user] = await server.db
        .select()
        .from(users)
        .where(eq(users.email, data.email))
        .limit(1);

      if (!user) {
        reply.status(401).send({ error: 'Invalid email or password' });
        return;
      }

      // Verify password
      const validPassword = await verifyPassword(data.password, user.passwordHash);
      if (!validPassword) {
        reply.status(401).send({ error: 'Invalid email or password' });
        return;
      }

      // Check email verification
      if (!user.emailVerified) {
        reply.status(403).send({ error: 'Please verify your email before logging in' });
        return;
      }

      // Generate tokens
      const payload = { userId: user.id, email: user.email };
      const accessToken = generateAccessToken(payload);
      const refreshToken = generateRefreshToken(payload);

      // Store refresh token
      const refreshExpiresAt = getTokenExpiration(process.env.JWT_REFRESH_EXPIRES_IN || '7d');
      await server.db.insert(refreshTokens).values({
        userId: user.id,
        token: refreshToken,
        expiresAt: refreshExpiresAt,
      });

      reply.send({
        accessToken,
        refreshToken,
        user: {
          id: user.id,
          email: user.email,
          name: user.name,
        },
      });
    } catch (error) {
      if (error instanceof z.ZodError) {
        reply.status(400).send({ error: 'Invalid input', details: error.errors });
        return;
      }

      server.log.error(error);
      reply.status(500).send({ error: 'Login failed' });
    }
  });

  // Refresh Access Token
  server.post('/auth/refresh', async (request, reply) => {
    try {
      const data = refreshTokenSchema.parse(request.body);

      // Verify refresh token signature
      const payload = verifyRefreshToken(data.refreshToken);

      // Check if token exists and is not expired
      const [storedToken] = await server.db
        .select()
        .from(refreshTokens)
        .where(
          and(
            eq(refreshTokens.token, data.refreshToken),
            gt(refreshTokens.expiresAt, new Date())
          )
        )
        .limit(1);

      if (!storedToken) {
        reply.status(401).send({ error: 'Invalid or expired refresh token' });
        return;
      }

      // Generate new access token
      const newAccessToken = generateAccessToken({
        userId: payload.userId,
        email: payload.email,
      });

      reply.send({ accessToken: newAccessToken });
    } catch (error) {
      if (error.name === 'JsonWebTokenError' || error.name === 'TokenExpiredError') {
        reply.status(401).send({ error: 'Invalid refresh token' });
        return;
      }

      server.log.error(error);
      reply.status(500).send({ error: 'Token refresh failed' });
    }
  });

  // Logout (invalidate refresh token)
  server.post('/auth/logout', async (request, reply) => {
    try {
      const data = refreshTokenSchema.parse(request.body);

      await server.db
        .delete(refreshTokens)
        .where(eq(refreshTokens.token, data.refreshToken));

      reply.send({ message: 'Logged out successfully' });
    } catch (error) {
      server.log.error(error);
      reply.status(500).send({ error: 'Logout failed' });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// src/routes/profile.ts (GET /profile: "the protected route")

async function profileRoutes(server) {
  // Get current user profile
  server.get('/profile', {
    onRequest: authenticateUser, // Protect this route
  }, async (request, reply) => {
    try {
      const [user] = await server.db
        .select({
          id: users.id,
          email: users.email,
          name: users.name,
          emailVerified: users.emailVerified,
          createdAt: users.createdAt,
        })
        .from(users)
        .where(eq(users.id, request.user.userId))
        .limit(1);

      if (!user) {
        reply.status(404).send({ error: 'User not found' });
        return;
      }

      reply.send(user);
    } catch (error) {
      server.log.error(error);
      reply.status(500).send({ error: 'Failed to fetch profile' });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// src/server.ts: one process, Fastify's logger off unless LOG=1. Logs go to stderr, so that
// stdout carries only the "listening on" line a harness waits for.

const server = Fastify({
  logger: process.env.LOG === '1'
    ? { level: process.env.LOG_LEVEL || 'info', stream: process.stderr }
    : false,
});

const pool = new pg.Pool({ connectionString: DATABASE_URL, max: PG_POOL });
// An idle pooled connection that the server drops (a restart) must not crash the process.
pool.on('error', (error) => server.log.error(error, 'idle PostgreSQL connection failed'));
const db = drizzle({ client: pool, schema });

server.decorate('db', db);
server.addHook('onClose', async () => {
  await pool.end();
});

// The no-op baseline: no database, no auth.
server.get('/health', async () => ({ status: 'ok' }));

// Register routes
server.register(authRoutes);
server.register(profileRoutes);

let closing = false;
function shutdown(signal) {
  if (closing) return;
  closing = true;
  server.log.info({ signal }, 'closing');
  // Fastify stops accepting, closes idle keep-alive connections, waits for requests in flight,
  // then runs onClose (pool.end()). Never hang on a stuck client: give up after 10 s.
  setTimeout(() => process.exit(1), 10_000).unref();
  server.close().then(
    () => process.exit(0),
    (error) => {
      console.error('authd-bench-node-peer: close failed:', error);
      process.exit(1);
    },
  );
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

try {
  // Replaces the seed's `npx drizzle-kit push`.
  await ensureSchema(pool);
  await server.listen({ port: PORT, host: HOST });
} catch (error) {
  console.error('authd-bench-node-peer: failed to start:', error);
  await pool.end().catch(() => {});
  process.exit(1);
}

// The one line on stdout, once connections are accepted (the real port if PORT=0).
console.log(`listening on http://${HOST}:${server.server.address().port}`);
