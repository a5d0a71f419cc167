import { InvalidArgumentError } from './errors.js';
import type { InputGroup, LinearView, NormView } from './model-view.js';

/**
 * Linears of a block that read one and the same input, and what produced it, by name relative to the block
 * (`'self_attn.q_proj'`; `*` matches one name segment, for example an expert index: `'mlp.experts.*.gate_proj'`).
 */
export interface MappingInputGroup {
  /** The norm or linear whose output the group reads; `null`: nothing a scale can be folded into. */
  readonly producer: string | null;
  readonly linears: readonly string[];
  /**
   * The producer can take a per-channel scale only when every query head has its own key/value head (a value
   * projection feeding the output projection through attention): otherwise the group counts as producer `none`.
   */
  readonly requiresUngroupedAttention?: boolean;
}

/**
 * What transforms need to know about an architecture, as a table (the role of llm-compressor's `mappings.py`):
 * which norm or linear feeds which linears, which linears write to the residual stream, which norms sit between a
 * branch and the residual add, the value/output projection pair, the linears that read an MLP's elementwise product,
 * linears that are part of the computation but not quantized by default (routers), and fused checkpoint tensors.
 * Names are relative to a block (`model.layers.3.` + name); `*` matches one name segment.
 *
 * Rotation (`@bitsmith/rotation`) and smoothing (`@bitsmith/smoothing`, through {@link resolveBlockMapping}'s input
 * groups) read it; `@bitsmith/models` holds one table per supported architecture.
 *
 * @example
 * ```ts
 * const llama: ArchitectureMapping = {
 *   name: 'llama',
 *   inputGroups: [
 *     { producer: 'input_layernorm', linears: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'] },
 *     { producer: 'self_attn.v_proj', linears: ['self_attn.o_proj'], requiresUngroupedAttention: true },
 *     { producer: 'post_attention_layernorm', linears: ['mlp.gate_proj', 'mlp.up_proj'] },
 *     { producer: 'mlp.up_proj', linears: ['mlp.down_proj'] },
 *   ],
 *   residualWriters: ['self_attn.o_proj', 'mlp.down_proj'],
 *   residualOutputNorms: [],
 *   valueOutput: { value: 'self_attn.v_proj', output: 'self_attn.o_proj' },
 *   mlpOutputs: ['mlp.down_proj'],
 *   auxiliary: [],
 *   fused: {},
 * };
 * ```
 */
export interface ArchitectureMapping {
  /** Identifier, for example the Hugging Face `model_type` (`'llama'`). */
  readonly name: string;
  readonly inputGroups: readonly MappingInputGroup[];
  /** Linears whose output is added straight to the residual stream (`o_proj`, `down_proj`, every expert's `down_proj`). */
  readonly residualWriters: readonly string[];
  /**
   * Norms between a branch's output and the residual add (Gemma's post-attention and post-feed-forward norms). A
   * residual-stream rotation cannot pass through them (their gain is applied after normalizing a rotated vector).
   */
  readonly residualOutputNorms: readonly string[];
  /** The value projection and the output projection that reads the attention output (per-head transforms). */
  readonly valueOutput?: { readonly value: string; readonly output: string };
  /** Linears that read an MLP's elementwise product (the default online-Hadamard targets). */
  readonly mlpOutputs: readonly string[];
  /** Linears computed in the block but not quantized by default (MoE routers, shared-expert gates); rotations rotate them. */
  readonly auxiliary: readonly string[];
  /** Checkpoint tensors stored fused, by relative name, and the linears they are split into (row blocks, in order). */
  readonly fused: Readonly<Record<string, readonly string[]>>;
}

/** A block as {@link resolveBlockMapping} needs it: full-named linears (quantized and auxiliary) and norms. */
export interface MappableBlock {
  readonly name: string;
  readonly linears: readonly LinearView[];
  readonly norms: readonly NormView[];
  readonly auxiliaryLinears?: readonly LinearView[];
  readonly attention?: { readonly numHeads: number; readonly numKeyValueHeads: number };
}

/** An {@link ArchitectureMapping} resolved to one block's views. */
export interface ResolvedBlockMapping {
  readonly inputGroups: InputGroup[];
  readonly residualWriters: LinearView[];
  readonly residualOutputNorms: NormView[];
  readonly valueOutput: { readonly value: LinearView; readonly output: LinearView } | undefined;
  readonly mlpOutputs: LinearView[];
  readonly auxiliary: LinearView[];
}

function pattern(relative: string): RegExp {
  const escaped = relative.split('.').map((part) => (part === '*' ? '[^.]+' : part.replace(/[\\^$+?()[\]{}|]/g, '\\$&')));
  return new RegExp(`^${escaped.join('\\.')}$`);
}

/**
 * Resolves a mapping table against one block: every name to the block's views (a name that matches nothing is
 * skipped, so one table serves blocks with and without optional parts, such as a dense and a sparse MLP).
 *
 * @throws InvalidArgumentError when an input group's producer is named but matches no norm or linear of the block.
 * @example
 * ```ts
 * const { residualWriters, valueOutput } = resolveBlockMapping(model.mapping!, model.blocks[0]!);
 * ```
 */
export function resolveBlockMapping(mapping: ArchitectureMapping, block: MappableBlock): ResolvedBlockMapping {
  const prefix = `${block.name}.`;
  const all = [...block.linears, ...(block.auxiliaryLinears ?? [])];
  const relative = (full: string): string => (full.startsWith(prefix) ? full.slice(prefix.length) : full);
  const linears = (names: readonly string[]): LinearView[] => {
    const out: LinearView[] = [];
    for (const name of names) {
      const re = pattern(name);
      for (const l of all) if (re.test(relative(l.name)) && !out.includes(l)) out.push(l);
    }
    return out;
  };
  const norms = (names: readonly string[]): NormView[] => {
    const out: NormView[] = [];
    for (const name of names) {
      const re = pattern(name);
      for (const n of block.norms) if (re.test(relative(n.name)) && !out.includes(n)) out.push(n);
    }
    return out;
  };
  const grouped = block.attention !== undefined && block.attention.numHeads !== block.attention.numKeyValueHeads;
  const inputGroups: InputGroup[] = [];
  const addGroup = (producer: string | null, names: readonly string[], requiresUngrouped: boolean | undefined): void => {
    const members = linears(names);
    if (members.length === 0) return;
    if (producer === null || (requiresUngrouped && grouped)) {
      inputGroups.push({ linears: members, producer: { kind: 'none' } });
      return;
    }
    const norm = norms([producer])[0];
    const linear = norm ? undefined : linears([producer])[0];
    if (norm) inputGroups.push({ linears: members, producer: { kind: 'norm', norm } });
    else if (linear) inputGroups.push({ linears: members, producer: { kind: 'linear', linear } });
    else throw new InvalidArgumentError('mapping', `${mapping.name}: producer "${producer}" of ${names.join(', ')} matches no norm or linear of ${block.name}`);
  };
  for (const group of mapping.inputGroups) {
    if (group.producer === null || !group.producer.includes('*')) {
      addGroup(group.producer, group.linears, group.requiresUngroupedAttention);
      continue;
    }
    // A wildcard producer (one expert's up_proj) pairs with the same binding in its linears (that expert's down_proj).
    const re = new RegExp(pattern(group.producer).source.split('[^.]+').join('([^.]+)'));
    const bindings = new Set<string>();
    for (const v of [...all, ...block.norms]) {
      const m = re.exec(relative(v.name));
      if (m) bindings.add(JSON.stringify(m.slice(1)));
    }
    for (const binding of bindings) {
      const values = JSON.parse(binding) as string[];
      const bind = (name: string): string => {
        let i = 0;
        return name
          .split('.')
          .map((part) => (part === '*' ? (values[i++] ?? '*') : part))
          .join('.');
      };
      addGroup(bind(group.producer), group.linears.map(bind), group.requiresUngroupedAttention);
    }
  }
  const value = mapping.valueOutput ? linears([mapping.valueOutput.value])[0] : undefined;
  const output = mapping.valueOutput ? linears([mapping.valueOutput.output])[0] : undefined;
  return {
    inputGroups,
    residualWriters: linears(mapping.residualWriters),
    residualOutputNorms: norms(mapping.residualOutputNorms),
    valueOutput: value && output ? { value, output } : undefined,
    mlpOutputs: linears(mapping.mlpOutputs),
    auxiliary: linears(mapping.auxiliary),
  };
}
