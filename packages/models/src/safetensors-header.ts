// The safetensors header parser lives in @bitsmith/core so that every package reads safetensors through one checked
// parser (formats' checkpoint readers and inspect included); re-exported here for models' readers and writer.
export {
  MAX_SAFETENSORS_HEADER_BYTES,
  parseSafetensorsHeader,
  planSafetensorsLayout,
  readSafetensorsHeaderLength,
  type SafetensorsEntry,
  type SafetensorsHeader,
  type SafetensorsLayout,
  type SafetensorsLayoutInput,
} from '@bitsmith/core';
