import { ModelFileError, readTextFile } from '@bitsmith/models';

/**
 * Reads a calibration or evaluation text: UTF-8 only (binary files and invalid UTF-8 are refused by `readTextFile`,
 * naming the offset), and not empty or whitespace-only.
 *
 * @example
 * ```ts
 * const text = await readCalibrationText('data/calib.txt');
 * ```
 */
export async function readCalibrationText(path: string): Promise<string> {
  const text = await readTextFile(path);
  if (text.trim().length === 0) throw new ModelFileError(path, `${text.length === 0 ? 'is empty' : `holds only whitespace (${text.length} characters)`}; expected text to calibrate or evaluate on`);
  return text;
}

// Cutting calibration sequences from a token stream is browser-safe and lives in @bitsmith/models; re-exported here.
export { calibrationSequences, type CalibrationProtocol } from '@bitsmith/models';
