import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';

import { longestFirstLengths, ReportTokenizer } from '../../src/datasets/tokenizer';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'datasets', 'text');

interface TokenizerCase {
  tokenizer: 'roberta_bpe' | 'minilm' | 'roberta_vocab' | 'minilm_vocab';
  text: string;
  pair: string | null;
  max_length: number;
  pad?: boolean;
  ids: number[];
  attention_mask: number[];
  token_type_ids?: number[] | null;
  truncated: boolean;
}

// Produced by reference/datasets_text.py with transformers (truncation=True): PreTrainedTokenizerFast on the
// tokenizer.json folders, AutoTokenizer on the folders that hold only vocab.json + merges.txt or vocab.txt.
const cases = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'tokenizer_expected.json'), 'utf8')) as TokenizerCase[];

describe('datasets/tokenizer', () => {
  const tokenizers = {
    roberta_bpe: ReportTokenizer.fromFolder(path.join(FIXTURES, 'roberta_bpe')),
    minilm: ReportTokenizer.fromFolder(path.join(FIXTURES, 'minilm')),
    roberta_vocab: ReportTokenizer.fromFolder(path.join(FIXTURES, 'roberta_vocab')),
    minilm_vocab: ReportTokenizer.fromFolder(path.join(FIXTURES, 'minilm_vocab')),
  };

  cases.forEach((testCase, index) => {
    const kind = testCase.pair === null ? 'text' : 'pair';
    const label = `${testCase.tokenizer} ${kind} ${index} at max ${testCase.max_length}${testCase.pad ? ' padded' : ''}`;
    it(`matches transformers: ${label}`, () => {
      const encoded = tokenizers[testCase.tokenizer].encode(testCase.text, testCase.pair, {
        maxLength: testCase.max_length,
        padToMaxLength: testCase.pad ?? false,
      });
      assert.deepStrictEqual(encoded.inputIds, testCase.ids);
      assert.deepStrictEqual(encoded.attentionMask, testCase.attention_mask);
      if (testCase.token_type_ids) assert.deepStrictEqual(encoded.tokenTypeIds, testCase.token_type_ids);
      assert.strictEqual(encoded.truncated, testCase.truncated);
    });
  });

  it('keeps the end token when truncating', () => {
    const tokenizer = tokenizers.roberta_bpe;
    const long = 'Sinus rhythm. '.repeat(400);
    const encoded = tokenizer.encode(long, 'Normal ECG.', { maxLength: 512 });
    assert.strictEqual(encoded.inputIds.length, 512);
    assert.strictEqual(encoded.inputIds[0], 0);
    assert.strictEqual(encoded.inputIds[511], 2);
    assert.strictEqual(encoded.truncated, true);
  });

  it('counts truncated rows in a batch', () => {
    const tokenizer = tokenizers.roberta_bpe;
    const batch = tokenizer.encodeBatch(
      [
        ['The report from Xray is: clear lungs.', 'The report from ECG is: Sinus rhythm'],
        ['The report from Xray is: ' + 'effusion '.repeat(40), 'The report from ECG is: Normal ECG'],
        'single text',
      ],
      { maxLength: 80 },
    );
    assert.strictEqual(batch.batchSize, 3);
    assert.strictEqual(batch.sequenceLength, 80);
    assert.strictEqual(batch.truncatedCount, 1);
    const first = tokenizer.encode('The report from Xray is: clear lungs.', 'The report from ECG is: Sinus rhythm');
    assert.ok(first.inputIds.length < 80, `first row has ${first.inputIds.length} tokens`);
    const single = tokenizer.encode('single text', null, { maxLength: 80 });
    assert.deepStrictEqual(Array.from(batch.inputIds.subarray(160, 160 + single.inputIds.length)), single.inputIds);
    assert.strictEqual(batch.inputIds[160 + single.inputIds.length], tokenizer.padId);
    assert.strictEqual(batch.attentionMask[160 + single.inputIds.length], 0);
  });

  it('splits a pair longest-first', () => {
    assert.deepStrictEqual(longestFirstLengths(3, 3, 5), [2, 3]);
    assert.deepStrictEqual(longestFirstLengths(10, 1, 5), [4, 1]);
    assert.deepStrictEqual(longestFirstLengths(10, 10, 7), [3, 4]);
    assert.deepStrictEqual(longestFirstLengths(2, 3, 9), [2, 3]);
  });

  it('rejects a length below the special tokens', () => {
    assert.throws(() => tokenizers.roberta_bpe.encode('a', 'b', { maxLength: 3 }), /special tokens alone need 4/);
  });

  it('reports a missing tokenizer file', () => {
    assert.throws(() => ReportTokenizer.fromFolder(path.join(FIXTURES, 'absent')), /tokenizer\.json: tokenizer file not found; expected tokenizer\.json, vocab\.json with merges\.txt, or vocab\.txt/);
  });
});
