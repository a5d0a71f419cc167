// The CLI's registry is @bitsmith/steps' Node registry (bit plans may be JSON file paths); re-exported so the CLI's
// public API keeps `defaultRegistry`.
export { defaultRegistry } from '@bitsmith/steps';
