// @bitsmith/steps: the default step registry (browser-safe entry). In Node the `node` export condition gives
// src/node.ts, whose registry also reads bit plans from files.
export { defaultRegistry } from './default-registry.js';
