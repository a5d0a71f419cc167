// The default entry of @bitsmith/recipe, browser-safe; the `node` entry (node.ts) adds loadRecipe (reads files).
export type { LayerSelector } from './selector.js';
export { matchesAny, isSelected, checkSelectors } from './selector.js';
export type { CacheActivationScheme, RecipeKvCacheScheme, RecipeStage, Recipe, RecipeProgressEvent, LayerReport, StepReport, RecipeReport } from './recipe-types.js';
/** @deprecated Moved to `@bitsmith/core` (with the calibration driver); re-exported here for existing imports. */
export { StatisticsCollector } from '@bitsmith/core';
export type { RunRecipeOptions } from './run-recipe.js';
export { runRecipe, toRecipe } from './run-recipe.js';
// The step contract moved to core (algorithm packages define their own steps); re-exported here for existing imports.
export type { StepDefinition, StepRegistry, QuantizationOptions } from '@bitsmith/core';
export { defineStep, quantizationOptions, resolveQuantization } from '@bitsmith/core';
export type { RecipeDocument } from './recipe-file.js';
export { RecipeFileError, parseRecipe, activationSchemeOptions, toActivationScheme, kvCacheOptions, toKvCacheScheme } from './recipe-file.js';
export { installInputActivationQuantizers, installKvCacheQuantizers, resolveKvCacheScheme } from './activation-calibration.js';
export { RecipeSelectionError, checkRecipeSelection, finiteInputs, scaleRangeWarning } from './recipe-checks.js';

// Reports as self-contained HTML (no scripts, no external resources): one run or several compared
export type { ReportLayerRow, ReportRun, ReportActivation, ReportView } from './report-html.js';
export { escapeHtml, reportView, compareReportViews, renderReportHtml } from './report-html.js';

// Progress estimates and resumable runs (checkpoints after every block)
export { BlockEta, formatDuration } from './block-eta.js';
export type { RunCheckpointStore, RunCheckpointOptions } from './run-checkpoint.js';
export { memoryCheckpointStore, CheckpointMismatchError } from './run-checkpoint.js';
export type { EncodedValue } from './checkpoint-encoding.js';
export { CheckpointFileError, encodeValue, decodeValue } from './checkpoint-encoding.js';
