// Builds a tiny BERT folder with the MiniLM WordPiece tokenizer, so main-job
// tests run the real text path without the 90 MB pretrained checkpoint.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { textPreset } from '../../src/model/text/config';
import { TransformerTextEncoder } from '../../src/model/text/encoder';
import { saveTextEncoder } from '../../src/model/text/pretrained';

const TOKENIZER_FIXTURES = path.resolve(__dirname, '..', 'fixtures', 'datasets', 'text', 'minilm');

export function makeTinyTextModel(): string {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'more-ts-tiny-bert-'));
  const encoder = new TransformerTextEncoder({ ...textPreset('bert-base'), hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 64 }, { seed: 3 });
  try {
    saveTextEncoder(encoder, folder);
  } finally {
    encoder.dispose();
  }
  for (const name of fs.readdirSync(TOKENIZER_FIXTURES)) {
    fs.copyFileSync(path.join(TOKENIZER_FIXTURES, name), path.join(folder, name));
  }
  return folder;
}

/** Tower sizes small enough for a test run of the main job. */
export const TEST_MODEL = {
  preset: 'tiny' as const,
  image: { width: 16, depth: 1, heads: 2, mlpDim: 32, patchSize: 32 },
  ecg: { width: 16, depth: 1, heads: 2, mlpDim: 32, convChannels: 8 },
  imageHead: { inputDim: 16, hiddenDim: 16, outputDim: 8 },
  ecgHead: { inputDim: 16, hiddenDim: 16, outputDim: 8 },
  textHead: { hiddenDim: 16, outputDim: 8 },
};
