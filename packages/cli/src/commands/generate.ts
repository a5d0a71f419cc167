import type { Command } from 'commander';
import { defaultBackend, disposeDefaultBackend } from '@bitsmith/linalg';
import { generateGreedy } from '@bitsmith/models';
import { loadModelFolder } from '../activation-export.js';
import { installOnlineTransforms } from '../online-transforms.js';
import { outputSinks, parseIntegerOption, type CommandOutput } from '../command-output.js';

/** Options of `bitsmith generate`, as commander parses them. */
interface GenerateCommandOptions {
  model: string;
  prompt: string;
  tokens: string;
  json?: boolean;
}

/**
 * Registers `bitsmith generate --model DIR --prompt TEXT [--tokens 32] [--json]`: greedy decoding from a prompt
 * (BOS prepended when the tokenizer defines one; stops early at EOS). Prints prompt and continuation as text, or
 * with `--json` an object `{ prompt, promptIds, ids, continuation }`.
 *
 * @param output Where to write (default: the process's stdout/stderr).
 * @example
 * ```ts
 * registerGenerate(program);
 * await program.parseAsync(['node', 'bitsmith', 'generate', '--model', 'models/tiny', '--prompt', 'Once upon a time']);
 * ```
 */
export function registerGenerate(program: Command, output: CommandOutput = {}): void {
  program
    .command('generate')
    .description('greedy decoding from a prompt with a Hugging Face Llama-family model')
    .requiredOption('--model <dir>', 'Hugging Face model folder (config.json, model.safetensors, tokenizer.json)')
    .requiredOption('--prompt <text>', 'the prompt')
    .option('--tokens <n>', 'new tokens to generate at most', '32')
    .option('--json', 'print token ids and text as JSON')
    .action(async (options: GenerateCommandOptions) => {
      const { stdout, stderr } = outputSinks(output);
      const maxNewTokens = parseIntegerOption('--tokens', options.tokens, 0);
      try {
        const backend = await defaultBackend();
        const { graph, tokenizer } = await loadModelFolder(options.model, { backend, onWarning: (w) => stderr(`warning: ${w.message}\n`) });
        await installOnlineTransforms(graph, options.model);
        const promptIds = tokenizer.encode(options.prompt, { bos: tokenizer.bosTokenId !== undefined });
        const ids = await generateGreedy(graph, promptIds, { maxNewTokens, eosTokenId: tokenizer.eosTokenId ?? graph.config.eosTokenId ?? null });
        // Decode prompt and continuation together (the decoder strips one leading space from a whole text), then split.
        const full = tokenizer.decode([...promptIds, ...ids]);
        const promptText = tokenizer.decode(promptIds);
        const continuation = full.startsWith(promptText) ? full.slice(promptText.length) : tokenizer.decode(ids);
        if (options.json) stdout(`${JSON.stringify({ prompt: options.prompt, promptIds, ids, continuation }, null, 2)}\n`);
        else stdout(`${promptText}${continuation}\n`);
      } finally {
        await disposeDefaultBackend();
      }
    });
}
