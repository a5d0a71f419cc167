// The `node` entry of @bitsmith/recipe (what `import '@bitsmith/recipe'` gives in Node, through the `node` export
// condition; also `@bitsmith/recipe/node`): the browser-safe default entry plus reading recipe files from disk.
export * from './index.js';
export { loadRecipe } from './recipe-file-node.js';
export { directoryCheckpointStore } from './checkpoint-store-node.js';
