// Benchmarks of @bitsmith/cli (run with npm run bench): the scale benchmark on the Qwen2.5-0.5B shape. The full
// setting of issue #17 (128 x 512 tokens, 24 blocks) takes tens of minutes; `npm run bench` runs 16 sequences of 512
// and stops after 4 blocks, projecting the whole run from the ETA. Run scale.mjs by hand for the full measurement.
process.argv.push(...(process.argv.length > 2 ? [] : ['--samples', '16', '--seq-len', '512', '--blocks', '4']));
await import('./scale.mjs');
