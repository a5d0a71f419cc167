// The recipe files the page offers, inlined from examples/recipes by the build (esbuild's text loader).
import awqGptqW4g32 from '../../recipes/awq-gptq-w4g32.yaml';
import gptqW3g32 from '../../recipes/gptq-w3g32.yaml';
import gptqW4g32 from '../../recipes/gptq-w4g32.yaml';
import hqqW4g32 from '../../recipes/hqq-w4g32.yaml';
import rtnW3g32 from '../../recipes/rtn-w3g32.yaml';
import rtnW4g32 from '../../recipes/rtn-w4g32.yaml';

/** Recipe file texts by name (the file name without `.yaml`). */
export const RECIPE_FILES: Readonly<Record<string, string>> = {
  'awq-gptq-w4g32': awqGptqW4g32,
  'gptq-w3g32': gptqW3g32,
  'gptq-w4g32': gptqW4g32,
  'hqq-w4g32': hqqW4g32,
  'rtn-w3g32': rtnW3g32,
  'rtn-w4g32': rtnW4g32,
};
