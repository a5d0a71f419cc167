import { readFileSync } from 'node:fs';
import { STORED_KINDS, StoredFormRefusedError } from '@bitsmith/core';
import { describe, expect, it } from 'vitest';
import { EXPORTER_STORED_KINDS, refuseDeclaredKinds, type ModelExporter } from './stored-form-export.js';
import { STORED_KIND_ROWS, storedKindCell, storedKindTable, TABLE_FORMATS } from './stored-kind-table.js';

describe('stored-kind table of docs/formats.md', () => {
  it('docs/formats.md holds the table exactly as generated (regenerate: node -e "import(\'@bitsmith/formats\').then(m => console.log(m.storedKindTable()))")', () => {
    const doc = readFileSync(new URL('../../../docs/formats.md', import.meta.url), 'utf8');
    expect(doc).toContain(storedKindTable());
  });

  it('has a row for every stored kind', () => {
    expect(new Set(STORED_KIND_ROWS.map((r) => r.kind))).toEqual(new Set(STORED_KINDS));
  });

  it("a refused cell of a --save exporter carries the reason of the exporter's StoredFormRefusedError; an exported one is accepted", () => {
    const exporters: Partial<Record<(typeof TABLE_FORMATS)[number], ModelExporter>> = { 'compressed-tensors': 'compressed-tensors', gptq: 'gptq', gguf: 'gguf', onnx: 'onnx', safetensors: 'fake' };
    for (const row of STORED_KIND_ROWS) {
      for (const [format, exporter] of Object.entries(exporters) as [(typeof TABLE_FORMATS)[number], ModelExporter][]) {
        const cell = storedKindCell(row, format);
        const accepted = EXPORTER_STORED_KINDS[exporter].includes(row.kind);
        if (!accepted) {
          expect(cell.startsWith('refused: '), `${row.label} / ${format}`).toBe(true);
          let message = '';
          try {
            refuseDeclaredKinds(exporter, [{ step: 's', stores: [row.kind] }]);
          } catch (error) {
            expect(StoredFormRefusedError.isInstance(error)).toBe(true);
            message = (error as Error).message;
          }
          expect(message).toContain(cell.slice('refused: '.length));
        } else {
          expect(() => refuseDeclaredKinds(exporter, [{ step: 's', stores: [row.kind] }])).not.toThrow();
        }
      }
    }
  });
});
