// A minimal stand-in for the parts of vitest's API that linalg's backend tests use, so that those test files, bundled
// by esbuild with `vitest` aliased to this file, run on a machine that has Node and a GPU but no node_modules (the
// device machine). Tests run in order after the file's top level has registered them; a summary line ends the run.
import { writeSync } from 'node:fs';
import { isDeepStrictEqual, inspect } from 'node:util';

// Synchronous writes: a native crash (the GPU driver, Dawn) then still leaves the name of the test it happened in.
const say = (line) => writeSync(1, `${line}\n`);

const root = { title: '', children: [], afterAll: [], skip: false };
let current = root;
const results = { passed: 0, failed: 0, skipped: 0, failures: [] };

function addSuite(title, fn, skip) {
  const suite = { title, children: [], afterAll: [], skip: skip || current.skip };
  current.children.push(suite);
  const parent = current;
  current = suite;
  try {
    fn();
  } finally {
    current = parent;
  }
}
export function describe(title, fn) {
  addSuite(title, fn, false);
}
describe.skip = (title, fn) => addSuite(title, fn, true);
describe.skipIf = (condition) => (title, fn) => addSuite(title, fn, Boolean(condition));
describe.runIf = (condition) => (title, fn) => addSuite(title, fn, !condition);
export function it(title, fn) {
  current.children.push({ title, fn, skip: current.skip });
}
it.skip = (title, fn) => current.children.push({ title, fn, skip: true });
it.skipIf = (condition) => (title, fn) => current.children.push({ title, fn, skip: Boolean(condition) || current.skip });
it.runIf = (condition) => (title, fn) => current.children.push({ title, fn, skip: !condition || current.skip });
export const test = it;
export function afterAll(fn) {
  current.afterAll.push(fn);
}

function fail(message) {
  throw new Error(message);
}
const show = (v) => inspect(v, { depth: 3, maxArrayLength: 8 });

function matchers(actual, negate) {
  const check = (ok, message) => {
    if (negate ? ok : !ok) fail((negate ? 'not: ' : '') + message);
  };
  const throwsWith = (error, expected) => {
    if (expected === undefined) return true;
    const message = error?.message ?? String(error);
    return expected instanceof RegExp ? expected.test(message) : typeof expected === 'string' ? message.includes(expected) : error instanceof expected;
  };
  return {
    toBe: (e) => check(Object.is(actual, e), `expected ${show(actual)} to be ${show(e)}`),
    toEqual: (e) => check(isDeepStrictEqual(JSON.parse(JSON.stringify(actual ?? null)), JSON.parse(JSON.stringify(e ?? null))), `expected ${show(actual)} to equal ${show(e)}`),
    toBeCloseTo: (e, digits = 2) => check(Math.abs(actual - e) < 10 ** -digits / 2, `expected ${actual} to be close to ${e} (${digits} digits)`),
    toBeLessThan: (e) => check(actual < e, `expected ${actual} < ${e}`),
    toBeLessThanOrEqual: (e) => check(actual <= e, `expected ${actual} <= ${e}`),
    toBeGreaterThan: (e) => check(actual > e, `expected ${actual} > ${e}`),
    toBeGreaterThanOrEqual: (e) => check(actual >= e, `expected ${actual} >= ${e}`),
    toContain: (e) => check(actual.includes(e), `expected ${show(actual)} to contain ${show(e)}`),
    toMatch: (e) => check(typeof e === 'string' ? actual.includes(e) : e.test(actual), `expected ${show(actual)} to match ${e}`),
    toSatisfy: (f) => check(Boolean(f(actual)), `expected ${show(actual)} to satisfy ${f}`),
    toBeDefined: () => check(actual !== undefined, 'expected a defined value'),
    toBeUndefined: () => check(actual === undefined, `expected undefined, got ${show(actual)}`),
    toBeTruthy: () => check(Boolean(actual), `expected ${show(actual)} to be truthy`),
    toBeFalsy: () => check(!actual, `expected ${show(actual)} to be falsy`),
    toHaveLength: (e) => check(actual.length === e, `expected length ${e}, got ${actual.length}`),
    toThrow: (e) => {
      let threw = false;
      let error;
      try {
        actual();
      } catch (x) {
        threw = true;
        error = x;
      }
      check(threw && throwsWith(error, e), `expected the function to throw ${e ?? ''}${threw ? `, it threw ${error?.message}` : ''}`);
    },
  };
}

export function expect(actual) {
  const m = matchers(actual, false);
  m.not = matchers(actual, true);
  const settle = (wantReject) =>
    new Proxy(
      {},
      {
        get: (_, name) => async (...args) => {
          let value;
          let rejected = false;
          try {
            value = await actual;
          } catch (error) {
            rejected = true;
            value = error;
          }
          if (rejected !== wantReject) fail(wantReject ? `expected a rejection, got ${show(value)}` : `expected a resolution, got ${value?.message ?? show(value)}`);
          if (name === 'toThrow') return matchers(() => { throw value; }, false).toThrow(...args);
          return matchers(value, false)[name](...args);
        },
      },
    );
  m.rejects = settle(true);
  m.resolves = settle(false);
  return m;
}

async function runSuite(suite, path) {
  for (const child of suite.children) {
    const name = path ? `${path} > ${child.title}` : child.title;
    if (child.children) {
      await runSuite(child, name);
    } else if (child.skip) {
      results.skipped++;
    } else {
      const t0 = performance.now();
      if (process.env.SHIM_VERBOSE) say(`RUN ${name}`);
      try {
        await child.fn();
        results.passed++;
      } catch (error) {
        results.failed++;
        results.failures.push(name);
        say(`FAIL ${name} (${(performance.now() - t0).toFixed(0)} ms)\n  ${error?.stack?.split('\n').slice(0, 3).join('\n  ') ?? error}`);
      }
    }
  }
  if (!suite.skip) for (const fn of suite.afterAll) await fn();
}

/** Runs every registered test; prints failures and one summary line; returns the number of failures. */
export async function runRegistered(label) {
  await runSuite(root, '');
  say(`${label}: ${results.passed} passed, ${results.failed} failed, ${results.skipped} skipped`);
  return results.failed;
}
