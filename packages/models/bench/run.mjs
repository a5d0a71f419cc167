// Benchmarks of @bitsmith/models (run with npm run bench).
await import('./forward.mjs');
await import('./forward-llama-docs.mjs');
await import('./block-backward.mjs');
